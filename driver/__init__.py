"""gpu-dra: a Kubernetes DRA driver for NVIDIA GPUs with sharing and packing-aware allocation."""

__version__ = "0.1.0"

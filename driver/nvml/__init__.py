"""NVML access: the narrow interface discovery uses, the real binding and the data-driven mock."""

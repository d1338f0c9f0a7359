"""NVML access: the narrow interface discovery uses, the real binding and the data-driven mock.

`open_backend("real")` binds to the node's NVML through nvidia-ml-py; `open_backend("mock:X")`
answers from data, where X is a shipped node description (driver/nvml/nodes/<X>.yaml), a path to
one, or a GPU-model name (driver/nvml/profiles/<X>.yaml) for a plain node of that model.
"""

from __future__ import annotations

from driver.nvml.interface import (
    Engines,
    GpuInfo,
    HealthEvent,
    MigInstance,
    MigProfile,
    NvmlBackend,
    NvmlError,
    Versions,
    snapshot,
)
from driver.nvml.strict import DataError

__all__ = [
    "DataError", "Engines", "GpuInfo", "HealthEvent", "MigInstance", "MigProfile", "NvmlBackend",
    "NvmlError", "Versions", "open_backend", "snapshot",
]


def open_backend(spec: str, node_name: str | None = None) -> NvmlBackend:
    """The NVML backend named by `spec`: "real" or "mock:<node file | node name | GPU model>".

    `node_name` seeds the mock's UUIDs and PCI bus IDs (two mock nodes must not share GPU UUIDs);
    a `nodeName` in the node description wins. Raises ValueError (DataError) for a bad spec.
    The backend is returned un-initialised: call `init()`.
    """
    if spec == "real":
        from driver.nvml.real import RealNvml

        return RealNvml()
    if spec.startswith("mock:") and len(spec) > 5:
        from driver.nvml.mock import MockNvml, load_node

        return MockNvml(load_node(spec[5:]), node_name or "mock-node")
    raise DataError(f"--nvml: expected 'real' or 'mock:<profile name or node file>', got {spec!r}")

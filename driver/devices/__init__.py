"""Device model (pure): GPUs, MIG devices, replicas, partitionable and fractional devices, their
names, and ResourceSlices.

Public entry points: `discover(backend, config, node_name) -> NodeInventory`,
`nodeconfig.load_node_config`, `slices.build_slices`, `validate.validate_slice`,
`classes.device_classes`.
"""

from driver.devices.inventory import discover
from driver.devices.model import CounterSet, Device, NodeInventory
from driver.devices.nodeconfig import NodeConfig, NodeConfigError, Sharing, load_node_config

__all__ = ["CounterSet", "Device", "NodeConfig", "NodeConfigError", "NodeInventory", "Sharing", "discover",
           "load_node_config"]

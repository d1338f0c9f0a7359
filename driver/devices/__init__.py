"""Device model (pure): GPUs, MIG devices, replicas, partitionable and fractional devices, their names, and ResourceSlices."""

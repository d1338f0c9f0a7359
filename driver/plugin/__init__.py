"""Kubelet plugin (I/O): gRPC services, registration, ResourceSlice publishing, prepare/unprepare, CDI, checkpoint, health."""

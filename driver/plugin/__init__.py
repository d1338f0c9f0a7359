"""Kubelet plugin (I/O): gRPC services, registration, ResourceSlice publishing, prepare/unprepare, CDI, checkpoint, health.

Entry points: `driver.plugin.driver.Plugin(PluginOptions(...))` (start/stop; used by
`gpu-dra kubelet-plugin` and by the local cluster's emulated nodes) and the generated stubs in
`driver.plugin.proto` (`dra_v1_pb2[_grpc]`, `dra_v1beta1_pb2[_grpc]`, `pluginregistration_pb2[_grpc]`,
`health_v1alpha1_pb2[_grpc]`, `grpc_health_v1_pb2[_grpc]`).

Modules, in the order a prepare meets them: server (gRPC handlers) -> state (the crash-safe
prepare/unprepare sequence) -> claims (claim dict -> checked plan, with driver.dra.configs) ->
inventory (device facts, MIG create/destroy) -> sharing (nvidia-smi, MPS daemon) -> cdi (spec
files) -> checkpoint (the record that survives restarts). Beside them: publisher (slices),
health (NVML events -> taints), metrics (Prometheus + /healthz), kube (every API call).
"""

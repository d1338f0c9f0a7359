"""Local cluster: an in-memory Kubernetes API server that real clients use, and emulated nodes.

- `server.ApiServer`: REST over HTTP/1.1 on 127.0.0.1 for core/v1 (namespaces, nodes, pods,
  events, configmaps), coordination.k8s.io/v1 leases, apps/v1 deployments/replicasets and
  resource.k8s.io/v1 (+ v1beta2 alias) DRA types; storage semantics in `store.Store`
  (resourceVersions, watches with bookmarks and 410, finalizers, owner GC, selectors, paging),
  per-type rules in `strategy`, DRA validation in `validation`, fault injection in `faults`.
- `claims.ClaimController`, `workloads.WorkloadController`, `nodes.Kubelet`: the controllers and
  kubelets of a real cluster, talking to the API server through the official client.
- `cluster.LocalCluster`: all of it from a cluster description (`clusterfile`,
  `clusters/default.yaml`), used by tests, `gpu-dra demo`, e2e and `gpu-dra local up`.
"""

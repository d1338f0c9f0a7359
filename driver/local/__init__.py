"""Local cluster: in-memory Kubernetes API server, claim-template controller, emulated nodes, `local up`."""

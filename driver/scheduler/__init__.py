"""The scheduler (pure): which node a pod goes to, and which devices its claims get there.

kube-scheduler's shape, in Python: a *snapshot* of the cluster (nodes, their devices and what is in
use, the pods on them), one module per constraint under `plugins/` (filter and score, named after
kube-scheduler's plugin), the packing strategies under `packing/`, preemption, and one *cycle*
(`cycle.schedule`) that orders them. The DRA allocator (`driver.allocator`) stays a library the
cycle calls on the chosen node; the controller, `simulate`, the trace benchmark and
`gpu-dra schedule` all call the same cycle.
"""

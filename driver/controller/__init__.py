"""Allocation controller (I/O): watches, queue, node fit, API writes, leader election around the pure allocator.

Modules, in data-flow order:
- kube.py: the official client used raw (JSON dicts, `_preload_content=False`);
- informers.py: list+watch caches with resume, bookmarks and re-list on 410;
- view.py: the allocator's `ClusterState` fed from informer events, with assumed decisions;
- queue.py: dedup work queue with backoff and parking of unschedulable pods;
- scheduler.py: the `Controller` (decide on one thread, write and bind on a pool, release);
- writer.py: claim finalizer/allocation/reservation writes, binding, rollback, conditions, events;
- leader.py: Lease-based leader election; metrics.py: Prometheus + /healthz;
- status.py: `gpu-dra status` report; demo.py + demo/*.yaml: `gpu-dra demo`; bench.py: `gpu-dra bench controller`.
"""

"""Allocator (pure): data in, decision out — no I/O, no clock, no globals besides caches.

Modules: inventory (slices → DeviceView/NodeInventory), usage (NodeUsage, Pick), request (claims
and classes → RequestSpec), capacity (consumable capacity and request policies), search (the
backtracking search, DeviceChooser), allocate (entry points, API results, failure reasons),
timing (`python -m driver.allocator.timing`: per-call costs), physical (devices on physical
GPUs, for the scorer) and gpuuse (how much of a GPU its devices use; `gpu-dra status` shares
it). CEL lives in driver.dra.cel.

Public API (what the controller and the simulator use):

- `inventory.build_inventories(slices, nodes=None) -> {node: NodeInventory}`: ResourceSlice dicts
  parsed once into `DeviceView`s (complete pools only, both counter layouts);
  `inventory.build_shared_inventory(slices)`: every allNodes / nodeSelector device once, to
  resolve allocations that no single node owns (their use is global: `sharedpool.SharedPools`).
- `usage.NodeUsage`: what is in use on a node; `add(picks)` / `remove(picks)` incremental,
  `NodeUsage.from_claims(inventory, claims)` rebuilds from claim statuses;
  `usage.picks_from_allocation(inventory, allocation)` for a claim being deallocated.
- `request.prepare(claims, classes) -> PreparedClaims` (raises `ClaimError`): parse a pod's
  unallocated claims once, then try them on many nodes.
- `allocate.allocate(claims, inventory, usage, classes, *, chooser=None, now=None)
  -> AllocationResult | AllocationFailure`: all claims on this node or none. The result has
  `.claims[i].allocation` (the `status.allocation` dict) and `.picks` (for `usage.add`); the
  failure has `.reason` and `.permanent`. Both are truthy/falsy accordingly.
- `allocate.quick_reject(claims, inventory, usage, classes=None) -> str | None`: cheap, sound
  pre-check for a scheduler's node loop.
- `allocate.allocated_on_node(claim, node, labels=None) -> bool`: for already-allocated claims.
- `allocate.DeviceChooser`: the protocol packing strategies implement (`order(request,
  candidates, inventory, usage)`); `capacity.consumed_capacity(device, request.capacity_requests)`
  says what a shared device would give.
"""

from driver.allocator.allocate import (
    AllocationFailure,
    AllocationResult,
    ClaimAllocation,
    DeviceChooser,
    allocate,
    allocated_on_node,
    quick_reject,
)
from driver.allocator.capacity import consumed_capacity
from driver.allocator.inventory import DeviceView, NodeInventory, SliceError, build_inventories, build_inventory
from driver.allocator.request import ClaimError, PreparedClaims, RequestSpec, prepare
from driver.allocator.usage import NodeUsage, Pick, UsageError, picks_from_allocation

__all__ = [
    "AllocationFailure", "AllocationResult", "ClaimAllocation", "ClaimError", "DeviceChooser", "DeviceView",
    "NodeInventory", "NodeUsage", "Pick", "PreparedClaims", "RequestSpec", "SliceError", "UsageError",
    "allocate", "allocated_on_node", "build_inventories", "build_inventory", "consumed_capacity",
    "picks_from_allocation", "prepare", "quick_reject",
]

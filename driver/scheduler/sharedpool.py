"""Usage of devices that several nodes see: allNodes and nodeSelector pools (network-attached
devices, FACTS §4).

Why a separate record: the scheduler keeps one `NodeUsage` per node so that trying a node reads
only that node's state. A node-local device lives in exactly one of them. A shared-pool device
appears in the inventory of every node its slice selects, and allocating it for a pod on node A
takes it away from node B too. So the truth about shared-pool devices is kept once, here, and
*mirrored* into the usage of every node that sees the device: a commit for one node updates all
of them, and a node that joins (or is rebuilt after a label or slice change) starts from the
current truth instead of from "nothing in use".

Pure: no I/O. `ClusterState` (schedule.py) owns one `SharedPools` and does the regrouping.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable

from driver.allocator.inventory import DeviceKey, NodeInventory
from driver.allocator.usage import NodeUsage, Pick, UsageError


@dataclass(slots=True)
class SharedPools:
    """The global usage of shared-pool devices, the live picks behind it, and who sees what."""

    usage: NodeUsage = field(default_factory=NodeUsage)
    live: dict[DeviceKey, list[Pick]] = field(default_factory=dict)  # picks now in use, per device
    sharers: dict[DeviceKey, set[str]] = field(default_factory=dict)  # nodes whose inventory has it

    # -- nodes ----------------------------------------------------------------------------------

    def attach(self, node: str, inventory: NodeInventory, usage: NodeUsage) -> None:
        """Register the node's shared-pool devices and copy their current use into `usage`."""
        seed: list[Pick] = []
        for d in inventory.devices:
            if d.shared_pool:
                self.sharers.setdefault(d.key, set()).add(node)
                seed.extend(self.live.get(d.key, ()))
        if seed:
            usage.add(seed)

    def detach(self, node: str, inventory: NodeInventory) -> None:
        """Forget that the node sees its shared-pool devices; their use stays recorded."""
        for d in inventory.devices:
            if d.shared_pool:
                nodes = self.sharers.get(d.key)
                if nodes is not None:
                    nodes.discard(node)
                    if not nodes:
                        del self.sharers[d.key]

    # -- allocations ----------------------------------------------------------------------------

    def record(self, picks: list[Pick], sign: int) -> None:
        """Add (sign > 0) or remove the picks globally. Raises UsageError and changes nothing when
        that contradicts what is recorded (the device is taken, or the release is unknown)."""
        picks = [p for p in picks if not p.admin]
        if not picks:
            return
        if sign > 0:
            self.usage.add(picks)
            for p in picks:
                self.live.setdefault(p.device.key, []).append(p)
            return
        matched = [(p, self._find(p)) for p in picks]
        if any(i is None for _, i in matched):
            missing = next(p for p, i in matched if i is None)
            raise UsageError(f"device {'/'.join(missing.device.key)} is not allocated")
        self.usage.remove(picks)
        for p in picks:
            entries = self.live[p.device.key]
            entries.pop(self._find(p))  # type: ignore[arg-type]
            if not entries:
                del self.live[p.device.key]

    def _find(self, pick: Pick) -> int | None:
        """Position of the live pick `pick` releases: the device's only one, or the same share."""
        for i, live in enumerate(self.live.get(pick.device.key, ())):
            if not pick.device.allow_multiple or (live.share_id == pick.share_id and live.consumed == pick.consumed):
                return i
        return None

    def by_node(self, picks: Iterable[Pick]) -> dict[str, list[Pick]]:
        """For every node that sees some of the picked devices, the picks it sees."""
        out: dict[str, list[Pick]] = {}
        for p in picks:
            if p.admin:
                continue
            for node in self.sharers.get(p.device.key, ()):
                out.setdefault(node, []).append(p)
        return out

"""`gpu-dra allocate`: would these claims fit, where, and if not, why — offline, from YAML.

    kubectl get resourceslices,deviceclasses,resourceclaims -A -o yaml > cluster.yaml
    gpu-dra allocate -f cluster.yaml -f my-claim.yaml            # every node, first fit
    gpu-dra allocate -f cluster.yaml -f my-claim.yaml --node n1 -o yaml

Claims that already carry an allocation count as usage; all the others are allocated together
(as one pod's claims would be) on each node in turn, so leave other pods' pending claims out.
Nothing is written anywhere: this is the allocator's verdict, for debugging "why is my pod
Pending".
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Iterable

import yaml


def register(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    p = sub.add_parser("allocate", help="dry-run allocation of ResourceClaims against ResourceSlices (offline)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-f", "--filename", action="append", required=True, metavar="FILE",
                   help="YAML/JSON with ResourceSlices, DeviceClasses, ResourceClaims, Nodes ('-' = stdin)")
    p.add_argument("--node", help="only this node (default: every node with devices)")
    p.add_argument("--now", help="allocationTimestamp to write into results (RFC 3339)")
    p.add_argument("-o", "--output", choices=["text", "yaml", "json"], default="text")
    p.set_defaults(func=run)


class InputError(ValueError):
    """An input file that cannot be used; the message names the file and object."""


def _documents(path: str) -> Iterable[dict[str, Any]]:
    from driver.cliinput import InputFileError, load_objects

    try:
        docs = load_objects(path)
    except InputFileError as exc:
        raise InputError(str(exc)) from None
    for i, doc in docs:
        if doc.get("kind", "").endswith("List"):
            yield from (item for item in doc.get("items") or [] if isinstance(item, dict))
        else:
            yield doc


def load(paths: list[str]) -> dict[str, list[dict[str, Any]]]:
    """Objects from the files, by kind. Unknown kinds are an error (a typo should not pass silently)."""
    out: dict[str, list[dict[str, Any]]] = {"ResourceSlice": [], "DeviceClass": [], "ResourceClaim": [], "Node": []}
    for path in paths:
        for obj in _documents(path):
            kind = obj.get("kind")
            if kind not in out:
                name = (obj.get("metadata") or {}).get("name", "?")
                raise InputError(f"{path}: {kind} {name}: expected ResourceSlice, DeviceClass, ResourceClaim or Node")
            out[kind].append(obj)
    return out


def dry_run(objects: dict[str, list[dict[str, Any]]], node: str | None = None,
            now: str | None = None) -> list[dict[str, Any]]:
    """Per node: {"node", "fits", "allocations" | "reason"}; fits first, in node order."""
    from driver.allocator.allocate import AllocationFailure, allocate
    from driver.allocator.inventory import build_inventories
    from driver.allocator.request import ClaimError, prepare
    from driver.allocator.usage import NodeUsage

    labels = {(n.get("metadata") or {}).get("name", ""): (n.get("metadata") or {}).get("labels") or {}
              for n in objects["Node"]}
    inventories = build_inventories(objects["ResourceSlice"], labels or None)
    classes = {(c.get("metadata") or {}).get("name", ""): c for c in objects["DeviceClass"]}
    allocated = [c for c in objects["ResourceClaim"] if (c.get("status") or {}).get("allocation")]
    pending = [c for c in objects["ResourceClaim"] if not (c.get("status") or {}).get("allocation")]
    if not pending:
        raise InputError("no unallocated ResourceClaim in the input: nothing to allocate")
    try:
        prepared = prepare(pending, classes)
    except ClaimError as exc:
        raise InputError(str(exc)) from None
    names = [node] if node else sorted(inventories)
    rows = []
    for name in names:
        inv = inventories.get(name)
        if inv is None:
            rows.append({"node": name, "fits": False, "reason": f"node {name} publishes no complete device pool"})
            continue
        result = allocate(prepared, inv, NodeUsage.from_claims(inv, allocated), now=now)
        if isinstance(result, AllocationFailure):
            rows.append({"node": name, "fits": False, "reason": result.reason, "permanent": result.permanent})
        else:
            claims = [f"{c.claim.namespace}/{c.claim.name}" for c in result.claims]
            rows.append({"node": name, "fits": True, "allocations": dict(zip(claims, result.allocations))})
    return sorted(rows, key=lambda r: not r["fits"])


def run(args: argparse.Namespace) -> int:
    from driver.allocator.inventory import SliceError
    from driver.allocator.usage import UsageError

    from driver.cliinput import FlagError, rfc3339

    try:
        now = rfc3339(args.now, "--now") if args.now is not None else None
        rows = dry_run(load(args.filename), args.node, now)
    except (InputError, FlagError, SliceError, UsageError) as exc:
        print(f"gpu-dra allocate: {exc}", file=sys.stderr)
        return 2
    if args.output == "json":
        print(json.dumps(rows, indent=2))
    elif args.output == "yaml":
        print(yaml.safe_dump(rows, sort_keys=False), end="")
    else:
        for row in rows:
            if row["fits"]:
                devices = ", ".join(f"{claim}: {r['request']}→{r['device']}" for claim, a in row["allocations"].items()
                                    for r in a["devices"]["results"])
                print(f"{row['node']}: fits ({devices})")
            else:
                print(f"{row['node']}: does not fit: {row['reason']}")
    return 0 if any(r["fits"] for r in rows) else 1

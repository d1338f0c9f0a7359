"""CDI spec files: one per prepared claim, written atomically.

The container runtime reads every spec in the CDI root whenever it creates a container, so a
half-written file would break unrelated pods: write to a temporary file in the same directory,
fsync it, rename it over the old one. Names follow NVIDIA's driver (FACTS.md §8): kind
`k8s.gpu.nvidia.com/claim`, file `k8s.gpu.nvidia.com-claim_<claimUID>.json`, devices
`<claimUID>-<deviceName>`.

Runtimes reject a spec that declares a lower `cdiVersion` than its fields need, and older
runtimes reject newer versions, so `required_version` declares the lowest version that covers
what a spec uses.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from driver.fsutil import remove_temp_files, write_atomic

VENDOR = "k8s.gpu.nvidia.com"
CLASS = "claim"
KIND = f"{VENDOR}/{CLASS}"
MPS_PIPE_DIR = "/tmp/nvidia-mps"
DEV = "/dev"


@dataclass
class DeviceEdits:
    """Container edits for one prepared device of a claim."""

    device_name: str
    env: dict[str, str] = field(default_factory=dict)
    device_nodes: list[str] = field(default_factory=list)  # paths in the container, under /dev
    mounts: list[tuple[str, str]] = field(default_factory=list)  # (hostPath, containerPath)


def spec_path(cdi_root: str | Path, claim_uid: str) -> Path:
    """Where the spec of one claim lives."""
    return Path(cdi_root) / f"{VENDOR}-{CLASS}_{claim_uid}.json"


def cdi_name(claim_uid: str, device_name: str) -> str:
    """The CDI device name of one device of a claim (unique across claims on the node)."""
    return f"{claim_uid}-{device_name}"


def cdi_device_id(claim_uid: str, device_name: str) -> str:
    """The fully qualified CDI device ID handed to kubelet."""
    return f"{KIND}={cdi_name(claim_uid, device_name)}"


def required_version(spec: dict[str, Any]) -> str:
    """The lowest cdiVersion that covers the fields a spec uses.

    0.3.0 covers env, deviceNodes, mounts and hooks; 0.4.0 adds a mount `type`; 0.5.0 allows
    device names that do not start with a letter (claim UIDs often start with a digit) and a
    device node `hostPath`; 0.6.0 adds annotations.
    """
    version = (0, 3, 0)
    edits = [spec.get("containerEdits") or {}] + [d.get("containerEdits") or {} for d in spec.get("devices", [])]
    if any("type" in m for e in edits for m in e.get("mounts", [])):
        version = max(version, (0, 4, 0))
    if any(d["name"] and not d["name"][0].isalpha() for d in spec.get("devices", [])) or any(
            "hostPath" in n for e in edits for n in e.get("deviceNodes", [])):
        version = max(version, (0, 5, 0))
    if spec.get("annotations") or any(d.get("annotations") for d in spec.get("devices", [])):
        version = max(version, (0, 6, 0))
    return ".".join(str(p) for p in version)


def _node(path: str, dev_root: str) -> dict[str, str]:
    """A device node; `hostPath` only when the host keeps its device nodes outside /dev (e.g. a
    driver container's root), so specs for ordinary hosts stay at the lowest cdiVersion."""
    node = {"path": path}
    root = dev_root.rstrip("/")  # "" for "/"
    if root != DEV and path.startswith(DEV + "/"):
        node["hostPath"] = root + path[len(DEV):]
    return node


def _edits(env: dict[str, str], nodes: list[str], mounts: list[tuple[str, str]], dev_root: str = DEV) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if env:
        out["env"] = [f"{k}={v}" for k, v in sorted(env.items())]
    if nodes:
        out["deviceNodes"] = [_node(p, dev_root) for p in nodes]
    if mounts:
        out["mounts"] = [
            {"hostPath": host, "containerPath": ctr, "options": ["rbind", "rw", "nosuid", "nodev"]}
            for host, ctr in mounts
        ]
    return out


def build_spec(claim_uid: str, devices: list[DeviceEdits], common_env: dict[str, str] | None = None,
               common_nodes: list[str] | None = None, dev_root: str = DEV) -> dict[str, Any]:
    """The CDI spec of one claim; `common_*` edits apply whenever any of its devices is injected.

    Device nodes are given by their container paths under /dev; `dev_root` is where the host keeps
    them (the same /dev on an ordinary node).
    """
    if not devices:
        raise ValueError("a CDI spec needs at least one device")
    spec: dict[str, Any] = {
        "cdiVersion": "",
        "kind": KIND,
        "devices": [
            {"name": cdi_name(claim_uid, d.device_name),
             "containerEdits": _edits(d.env, d.device_nodes, d.mounts, dev_root)}
            for d in devices
        ],
    }
    common = _edits(common_env or {}, common_nodes or [], [], dev_root)
    if common:
        spec["containerEdits"] = common
    spec["cdiVersion"] = required_version(spec)
    return spec


def write_spec(cdi_root: str | Path, claim_uid: str, spec: dict[str, Any]) -> Path:
    """Atomically (re)write the spec of one claim; readers see the old file or the new one."""
    text = json.dumps(spec, indent=2, sort_keys=True) + "\n"
    # 0644: runtimes run as root, but readable specs help debugging. No directory fsync: a spec
    # only matters within one boot (after a reboot the plugin drops every claim and kubelet
    # prepares again), and readers already see old-or-new atomically.
    return write_atomic(spec_path(cdi_root, claim_uid), text, mode=0o644)


def delete_spec(cdi_root: str | Path, claim_uid: str) -> bool:
    """Remove a claim's spec; True if there was one. Missing is fine (idempotent unprepare)."""
    try:
        spec_path(cdi_root, claim_uid).unlink()
    except FileNotFoundError:
        return False
    return True


def list_claim_uids(cdi_root: str | Path) -> list[str]:
    """UIDs of the claims that have a spec of ours in the CDI root (for leak checks and GC)."""
    root = Path(cdi_root)
    if not root.is_dir():
        return []
    prefix = f"{VENDOR}-{CLASS}_"
    return sorted(p.name[len(prefix):-len(".json")] for p in root.glob(f"{prefix}*.json"))


def remove_stale_temp_files(cdi_root: str | Path) -> int:
    """Delete temporary files a crash left behind mid-write; returns how many."""
    return remove_temp_files(cdi_root, f"{VENDOR}-{CLASS}_*")

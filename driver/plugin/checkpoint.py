"""The plugin's crash-safe record of what it prepared.

Kubelet may call NodeUnprepareResources after a plugin restart and after the claim object is
gone, so everything needed to undo a prepare lives here, not in memory and not in the API.
A claim is recorded as `PrepareStarted` *before* any side effect (MIG instance, time-slice
setting, MPS daemon, CDI file) and as `PrepareCompleted` after the last one; a restart that
finds `PrepareStarted` rolls the claim back from what the record says was intended.

The file is written atomically (temp + fsync + rename + directory fsync) and carries a SHA-256
checksum of its payload, so a torn or edited file is detected rather than trusted. It also
records the node's boot ID: after a reboot, MIG instances and MPS daemons are gone and
time-slice settings reset, so only files need cleaning.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from driver.fsutil import remove_temp_files, write_atomic

FILE_NAME = "checkpoint.json"
FORMAT_VERSION = 1
PREPARE_STARTED = "PrepareStarted"
PREPARE_COMPLETED = "PrepareCompleted"
BOOT_ID_PATH = "/proc/sys/kernel/random/boot_id"


class CheckpointCorrupt(RuntimeError):
    """The checkpoint file exists but cannot be trusted (bad JSON, checksum mismatch, bad shape)."""


@dataclass
class PreparedDevice:
    """One allocated device of a claim, with everything needed to undo its preparation."""

    request_names: list[str]
    pool: str
    device: str
    type: str  # gpu | mig | replica | fractional
    uuid: str = ""  # for a dynamic MIG device, known only once created
    parent_uuid: str = ""
    gpu_index: int = -1  # index of the physical GPU (parent for MIG / replica / fractional)
    cdi_device_ids: list[str] = field(default_factory=list)
    share_id: str | None = None
    # Dynamic MIG: the instance this claim creates (profile + placement), destroyed on unprepare.
    mig_profile: str = ""
    mig_placement: int = -1
    mig_created: bool = False
    # Sharing applied to the physical GPU / MIG device.
    sharing: str = ""  # "" | TimeSlicing | MPS
    timeslice_interval: str = ""  # interval name set through nvidia-smi ("" = untouched)
    consumed: dict[str, str] = field(default_factory=dict)  # fractional: consumed capacity


@dataclass
class ClaimRecord:
    """What the plugin did (or set out to do) for one claim."""

    uid: str
    namespace: str
    name: str
    state: str
    devices: list[PreparedDevice] = field(default_factory=list)
    mps_dir: str = ""  # per-claim MPS pipe/log/shm directory when MPS is used

    @staticmethod
    def from_dict(d: dict[str, Any]) -> "ClaimRecord":
        devices = [PreparedDevice(**dev) for dev in d.get("devices", [])]
        return ClaimRecord(d["uid"], d["namespace"], d["name"], d["state"], devices, d.get("mps_dir", ""))


@dataclass
class Checkpoint:
    """All claim records of this node plus the boot they belong to."""

    boot_id: str
    claims: dict[str, ClaimRecord] = field(default_factory=dict)


def read_boot_id(path: str = BOOT_ID_PATH) -> str:
    """The kernel's per-boot random ID ("" when unavailable, e.g. not Linux)."""
    try:
        return Path(path).read_text().strip()
    except OSError:
        return ""


def _payload(cp: Checkpoint) -> dict[str, Any]:
    return {
        "version": FORMAT_VERSION,
        "bootID": cp.boot_id,
        "claims": {uid: asdict(rec) for uid, rec in sorted(cp.claims.items())},
    }


def _checksum(payload: dict[str, Any]) -> str:
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def save(state_dir: str | Path, cp: Checkpoint) -> None:
    """Atomically replace the checkpoint file (directory synced: it must survive a crash of the node)."""
    payload = _payload(cp)
    doc = {"checksum": _checksum(payload), "data": payload}
    write_atomic(Path(state_dir) / FILE_NAME, json.dumps(doc, sort_keys=True), sync_dir=True)


def load(state_dir: str | Path) -> Checkpoint | None:
    """Read the checkpoint; None when there is none yet. Raises CheckpointCorrupt if untrustworthy."""
    path = Path(state_dir) / FILE_NAME
    remove_temp_files(state_dir, FILE_NAME)  # a crash mid-write; the real file is intact
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise CheckpointCorrupt(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("data"), dict):
        raise CheckpointCorrupt(f"{path}: expected an object with 'checksum' and 'data'")
    payload = doc["data"]
    if doc.get("checksum") != _checksum(payload):
        raise CheckpointCorrupt(f"{path}: checksum mismatch (file was truncated or edited)")
    if payload.get("version") != FORMAT_VERSION:
        raise CheckpointCorrupt(f"{path}: unsupported format version {payload.get('version')!r}")
    try:
        claims = {uid: ClaimRecord.from_dict(rec) for uid, rec in payload.get("claims", {}).items()}
    except (KeyError, TypeError) as exc:
        raise CheckpointCorrupt(f"{path}: malformed claim record ({exc})") from None
    return Checkpoint(str(payload.get("bootID", "")), claims)

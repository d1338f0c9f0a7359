"""Crash-safe file replacement, shared by the files the kubelet plugin owns (CDI specs, checkpoint).

A reader (the container runtime, the plugin after a restart) must see the old file or the new
one, never a torn one: write a temporary file in the same directory (same filesystem, so the
rename is atomic), fsync it, rename it over the target. Temporary files are named
`.<target name>.<random>.tmp`, so what a crash leaves behind can be found and removed.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def write_atomic(path: str | Path, data: bytes | str, mode: int | None = None, sync_dir: bool = False) -> Path:
    """Replace `path` with `data` atomically; the directory is created if missing.

    `mode` sets the file's permissions (the temporary file is created 0600). `sync_dir` also
    fsyncs the directory, so that the rename itself survives a power loss — needed for state
    that must outlive a reboot, not for files that only matter within one boot.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    payload = data.encode() if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    if sync_dir:
        dfd = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    return target


def remove_temp_files(directory: str | Path, name_glob: str) -> int:
    """Delete the temporary files `write_atomic` left for targets matching `name_glob`; how many."""
    root = Path(directory)
    if not root.is_dir():
        return 0
    count = 0
    for p in root.glob(f".{name_glob}.*.tmp"):
        p.unlink(missing_ok=True)
        count += 1
    return count

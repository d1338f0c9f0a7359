"""Sharing settings applied on the node: time-slice intervals and MPS control daemons.

Both go through NVIDIA's own binaries (`nvidia-smi`, `nvidia-cuda-mps-control`) rather than
NVML calls, as NVIDIA's driver does: the binaries are what operators know and can run by hand
to check the result. The paths are configurable so tests substitute recording fakes.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from driver import log

logger = log.get(__name__)
TIMEOUT_S = 20.0


class SharingError(RuntimeError):
    """A sharing command failed; the message carries the command and its stderr."""


def _run(argv: list[str], env: dict[str, str] | None = None, stdin: str | None = None) -> str:
    try:
        proc = subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=TIMEOUT_S,
                              env=None if env is None else {**os.environ, **env})
    except FileNotFoundError:
        raise SharingError(f"{argv[0]}: not found (set its path with the plugin flags)") from None
    except subprocess.TimeoutExpired:
        raise SharingError(f"{' '.join(argv)}: no answer within {TIMEOUT_S:.0f}s") from None
    if proc.returncode != 0:
        detail = (proc.stderr or proc.stdout).strip()[:500]
        raise SharingError(f"{' '.join(argv)}: exit code {proc.returncode}: {detail}")
    return proc.stdout


@dataclass
class NvidiaSmi:
    """Time-slice interval of a GPU: `nvidia-smi compute-policy -i <uuid> --set-timeslice <n>`."""

    path: str = "nvidia-smi"  # "" = simulated: log the command, run nothing (mock NVML nodes)

    def set_timeslice(self, uuid: str, value: int) -> None:
        argv = [self.path or "nvidia-smi", "compute-policy", "-i", uuid, "--set-timeslice", str(value)]
        if self.path:
            _run(argv)
        logger.info("timeslice_set", gpu=uuid, value=value, simulated=not self.path)


@dataclass
class MpsSettings:
    """Defaults the control daemon gives every client of the claim."""

    active_thread_percentage: int | None = None
    pinned_memory_limits: dict[str, Fraction] | None = None  # device UUID -> bytes


@dataclass
class MpsControl:
    """One MPS control daemon per claim, with its pipe/log directories under the claim's dir.

    The container gets `CUDA_MPS_PIPE_DIRECTORY` pointing at the mounted pipe directory, so its
    CUDA clients talk to this claim's daemon and to no other claim's.
    """

    path: str = "nvidia-cuda-mps-control"  # "" = simulated: directories only, no daemon

    @staticmethod
    def dirs(claim_dir: str | Path) -> tuple[Path, Path, Path]:
        base = Path(claim_dir)
        return base / "pipe", base / "log", base / "shm"

    def _env(self, claim_dir: str | Path, uuids: list[str] | None = None) -> dict[str, str]:
        pipe, logs, _ = self.dirs(claim_dir)
        env = {"CUDA_MPS_PIPE_DIRECTORY": str(pipe), "CUDA_MPS_LOG_DIRECTORY": str(logs)}
        if uuids:
            env["CUDA_VISIBLE_DEVICES"] = ",".join(uuids)
        return env

    def start(self, claim_dir: str | Path, uuids: list[str], settings: MpsSettings) -> None:
        """Start the daemon (if not running) and apply the defaults; idempotent."""
        for d in self.dirs(claim_dir):
            d.mkdir(parents=True, exist_ok=True)
        env = self._env(claim_dir, uuids)
        if not self.path:
            logger.info("mps_started", dir=str(claim_dir), devices=uuids, simulated=True)
            return
        if (self.dirs(claim_dir)[0] / "control").exists():
            logger.info("mps_already_running", dir=str(claim_dir))  # e.g. a checkpoint rebuild
        else:
            _run([self.path, "-d"], env=env)
        commands = []
        if settings.active_thread_percentage is not None:
            commands.append(f"set_default_active_thread_percentage {settings.active_thread_percentage}")
        for uuid, limit in (settings.pinned_memory_limits or {}).items():  # device order of the claim
            mib = int(limit // (1024 * 1024))
            commands.append(f"set_default_device_pinned_mem_limit {uuid} {mib}M")
        for command in commands:
            _run([self.path], env=env, stdin=command + "\n")
        logger.info("mps_started", dir=str(claim_dir), devices=uuids, commands=len(commands))

    def stop(self, claim_dir: str | Path) -> None:
        """Stop the daemon and remove its directories; a daemon already gone is fine."""
        base = Path(claim_dir)
        if base.exists() and self.path:
            try:
                _run([self.path], env=self._env(claim_dir), stdin="quit\n")
            except SharingError as exc:
                logger.warning("mps_stop_failed", dir=str(claim_dir), error=str(exc))
        shutil.rmtree(base, ignore_errors=True)
        logger.info("mps_stopped", dir=str(claim_dir))

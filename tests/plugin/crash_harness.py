"""Run one kubelet plugin in its own process, for the crash tests (killed with SIGKILL).

Usage: python crash_harness.py ROOT KUBECONFIG   (env GPU_DRA_CRASH_AT picks a crash point)

MIG instances outlive the plugin process on real hardware; the mock NVML lives in memory, so
this harness keeps the mock's instances in ROOT/mig-state.json (written the moment NVML would
have created or destroyed them) and re-creates them at start. That file is what the test reads
to check that no instance leaked.
"""

from __future__ import annotations

import json
import signal
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

from driver.nvml import open_backend
from driver.plugin.driver import Plugin, PluginOptions
from driver.plugin.inventory import NvmlMig

NVML = "mock:a100-80gb-x8"
CONFIG = {"sharing": {"mode": "whole"}, "gpus": {"3": {"mode": "dynamic"}}}
BIN = Path(__file__).parent / "bin"


@dataclass
class PersistentMig(NvmlMig):
    """NvmlMig whose instances survive the process, like the hardware's."""

    state_file: Path = Path("mig-state.json")

    def _write(self) -> None:
        rows = [[g, p, s] for g in range(self.backend.device_count()) for _, p, s in self.instances(g)]
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(rows))
        tmp.replace(self.state_file)

    def replay(self) -> None:
        if self.state_file.exists():
            for gpu, profile, start in json.loads(self.state_file.read_text()):
                super().create(gpu, profile, start)

    def create(self, gpu_index: int, profile: str, placement: int) -> str:
        uuid = super().create(gpu_index, profile, placement)
        self._write()
        return uuid

    def destroy(self, gpu_index: int, uuid: str) -> None:
        super().destroy(gpu_index, uuid)
        self._write()


def main(root: str, kubeconfig: str) -> int:
    base = Path(root)
    backend = open_backend(NVML, "node-a")
    backend.init()
    mig = PersistentMig(backend, base / "mig-state.json")
    mig.replay()
    options = PluginOptions(
        node_name="node-a", nvml=NVML, node_config=CONFIG, kubeconfig=kubeconfig,
        plugin_dir=str(base / "plugins"), registry_dir=str(base / "registry"), cdi_root=str(base / "cdi"),
        nvidia_smi=str(BIN / "nvidia-smi"), mps_control=str(BIN / "nvidia-cuda-mps-control"))
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    plugin = Plugin(options, backend=backend, mig=mig).start()
    stop.wait()
    plugin.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))

"""MIG capability device nodes: `/proc/driver/nvidia-caps/mig-minors` and `/dev/nvidia-caps`.

A process can open a MIG device only if it may also open the capability device nodes of the MIG
device's GPU instance and compute instance. The NVIDIA kernel driver names each capability
(`gpu<G>/gi<GI>/access`, `gpu<G>/gi<GI>/ci<CI>/access`, G = the parent GPU's minor number) and
lists its minor in the mig-minors file, one `<name> <minor>` per line; the node for minor M is
`/dev/nvidia-caps/nvidia-cap<M>`. A container runtime injects only the device nodes a CDI spec
names, so the plugin resolves these two per MIG device from the file.

Both halves live here, the parser the plugin uses and the table the mock NVML renders, so the
naming cannot drift between them. `render` follows the layout of NVIDIA's driver (config 1,
monitor 2, then for every GPU 15 GPU instances of 1 + 8 minors each), which agrees with the minors
seen on real nodes (e.g. `gpu3/gi3/ci3/access 439`); the mock only relies on it being consistent
with its own GPU-instance ids.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

DEFAULT_PATH = "/proc/driver/nvidia-caps/mig-minors"
CAPS_DIR = "/dev/nvidia-caps"
GPU_INSTANCES = 15  # GPU-instance ids 0..14 per GPU
COMPUTE_INSTANCES = 8  # compute-instance ids 0..7 per GPU instance

_MINOR = re.compile(r"^[0-9]+$")


class MigCapsError(ValueError):
    """The mig-minors table is missing, malformed, or lacks an entry; the message says which."""


def gi_name(gpu_minor: int, gi_id: int) -> str:
    """The capability name of a GPU instance."""
    return f"gpu{gpu_minor}/gi{gi_id}/access"


def ci_name(gpu_minor: int, gi_id: int, ci_id: int) -> str:
    """The capability name of a compute instance."""
    return f"gpu{gpu_minor}/gi{gi_id}/ci{ci_id}/access"


def cap_node(minor: int) -> str:
    """The device node (container path) of a capability minor."""
    return f"{CAPS_DIR}/nvidia-cap{minor}"


@dataclass(frozen=True)
class MigMinors:
    """A parsed mig-minors table: capability name -> minor, and where it came from (for errors)."""

    minors: dict[str, int]
    source: str

    def minor(self, name: str) -> int:
        """The minor of one capability; MigCapsError naming the entry and the file if absent."""
        try:
            return self.minors[name]
        except KeyError:
            raise MigCapsError(f"{self.source}: no entry {name!r} (expected a line '{name} <minor>')") from None

    def device_nodes(self, gpu_minor: int, gi_id: int, ci_id: int) -> list[str]:
        """The two nodes a container needs for one MIG device: its GPU instance's, then its
        compute instance's."""
        return [cap_node(self.minor(gi_name(gpu_minor, gi_id))), cap_node(self.minor(ci_name(gpu_minor, gi_id, ci_id)))]


def parse(text: str, source: str) -> MigMinors:
    """Parse mig-minors text; MigCapsError names the line and what was expected.

    Blank lines are skipped; names this code does not use are kept (a newer driver may add
    capabilities), but a repeated name is refused because it would make a lookup ambiguous.
    """
    minors: dict[str, int] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.split()
        where = f"{source}: line {number} {line.strip()!r}"
        if len(fields) != 2:
            raise MigCapsError(f"{where}: expected '<capability name> <minor>' (two fields), got {len(fields)}")
        name, minor = fields
        if not _MINOR.match(minor):
            raise MigCapsError(f"{where}: minor: expected a non-negative decimal integer, got {minor!r}")
        if name in minors:
            raise MigCapsError(f"{where}: capability {name!r} already listed with minor {minors[name]}")
        minors[name] = int(minor)
    return MigMinors(minors, source)


def load(path: str | Path) -> MigMinors:
    """Read and parse the mig-minors file; MigCapsError names the file when it cannot be read."""
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as exc:
        raise MigCapsError(
            f"MIG capability table {p}: cannot read: {exc.strerror or exc} (the NVIDIA driver lists the "
            "minors of /dev/nvidia-caps there; is the driver loaded with MIG support?)") from None
    return parse(text, f"MIG capability table {p}")


def render(gpu_minors: Iterable[int]) -> str:
    """A mig-minors table for GPUs with these minors, in the driver's layout (for the mock).

    A GPU's block starts at a fixed offset from its minor, not after the previous GPU listed, so a
    GPU's minors do not depend on which other GPUs are present.
    """
    per_gi = 1 + COMPUTE_INSTANCES
    lines = ["config 1", "monitor 2"]
    for gpu in sorted(set(gpu_minors)):
        for gi in range(GPU_INSTANCES):
            base = 3 + (gpu * GPU_INSTANCES + gi) * per_gi
            lines.append(f"{gi_name(gpu, gi)} {base}")
            lines += [f"{ci_name(gpu, gi, ci)} {base + 1 + ci}" for ci in range(COMPUTE_INSTANCES)]
    return "\n".join(lines) + "\n"

"""The MIG capability table (mig-minors): parsing, lookups, the driver layout the mock renders,
and the mock's GPU-instance ids staying inside that table."""

from __future__ import annotations

from pathlib import Path

import pytest

from driver.nvml import migcaps, open_backend
from driver.nvml.migcaps import MigCapsError


def test_lookup_in_a_driver_style_file(tmp_path: Path) -> None:
    path = tmp_path / "mig-minors"
    path.write_text("config 1\nmonitor 2\ngpu0/gi1/access 12\ngpu0/gi1/ci0/access 13\ngpu0/gi1/ci1/access 14\n"
                    "gpu2/gi7/access 336\ngpu2/gi7/ci0/access 337\n\n")
    table = migcaps.load(path)
    assert table.device_nodes(0, 1, 1) == ["/dev/nvidia-caps/nvidia-cap12", "/dev/nvidia-caps/nvidia-cap14"]
    assert table.device_nodes(2, 7, 0) == ["/dev/nvidia-caps/nvidia-cap336", "/dev/nvidia-caps/nvidia-cap337"]
    assert table.minor("monitor") == 2


def test_rendered_table_has_the_minors_real_drivers_list() -> None:
    """Minors as NVIDIA drivers number them on real nodes (config 1, monitor 2, then 135 per GPU)."""
    table = migcaps.parse(migcaps.render(range(8)), "rendered")
    assert table.minor("config") == 1 and table.minor("monitor") == 2
    assert table.minor("gpu0/gi0/access") == 3 and table.minor("gpu0/gi0/ci0/access") == 4
    assert table.minor("gpu0/gi0/ci2/access") == 6
    assert table.minor("gpu3/gi3/ci3/access") == 439
    assert table.minor("gpu6/gi11/ci7/access") == 920
    assert len(table.minors) == 2 + 8 * 15 * 9
    assert len(set(table.minors.values())) == len(table.minors)
    # A GPU's block does not move when other GPUs are absent.
    alone = migcaps.parse(migcaps.render([3]), "rendered")
    assert alone.minor("gpu3/gi3/ci3/access") == 439 and "gpu0/gi0/access" not in alone.minors


@pytest.mark.parametrize("line, expected", [
    ("gpu0/gi0/access", r"line 3 'gpu0/gi0/access': expected '<capability name> <minor>' \(two fields\), got 1"),
    ("gpu0/gi0/access 3 4", r"line 3 'gpu0/gi0/access 3 4': expected .* \(two fields\), got 3"),
    ("gpu0/gi0/access x3", r"line 3 'gpu0/gi0/access x3': minor: expected a non-negative decimal integer, got 'x3'"),
    ("gpu0/gi0/access -3", r"line 3 .*: minor: expected a non-negative decimal integer, got '-3'"),
    ("monitor 7", r"line 3 'monitor 7': capability 'monitor' already listed with minor 2"),
])
def test_malformed_line_is_named(line: str, expected: str) -> None:
    with pytest.raises(MigCapsError, match=r"^table-x: " + expected):
        migcaps.parse(f"config 1\nmonitor 2\n{line}\ngpu0/gi0/ci0/access 4\n", "table-x")


def test_missing_entry_names_the_capability_and_the_file(tmp_path: Path) -> None:
    path = tmp_path / "mig-minors"
    path.write_text("config 1\nmonitor 2\ngpu0/gi1/access 12\n")
    table = migcaps.load(path)
    with pytest.raises(MigCapsError, match=rf"{path}: no entry 'gpu0/gi1/ci0/access'"):
        table.device_nodes(0, 1, 0)
    with pytest.raises(MigCapsError, match=rf"{path}: no entry 'gpu1/gi1/access'"):
        table.device_nodes(1, 1, 0)


def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(MigCapsError, match=rf"MIG capability table {tmp_path}/absent: cannot read: No such file"):
        migcaps.load(tmp_path / "absent")


def test_mock_gi_ids_are_reused_and_always_in_the_table() -> None:
    """Many create/destroy cycles (dynamic MIG) must not run the ids past the driver's 0..14."""
    b = open_backend("mock:a100-80gb-mixed", "node-a")
    b.init()
    table = migcaps.parse(b.mig_minors(), "mock")
    for gpu in range(b.device_count()):  # static layouts: distinct ids per GPU, all listed
        ids = [(m.gi_id, m.ci_id) for m in b.mig_instances(gpu)]
        assert len({gi for gi, _ in ids}) == len(ids)
        for gi, ci in ids:
            assert len(table.device_nodes(b.gpu(gpu).minor, gi, ci)) == 2
    b.set_mig_mode(3, True)
    kept = b.create_mig_instance(3, "3g.40gb", 0)
    seen = set()
    for _ in range(20):
        inst = b.create_mig_instance(3, "1g.10gb", 4)
        seen.add(inst.gi_id)
        b.destroy_mig_instance(3, inst.uuid)
    assert seen == {kept.gi_id + 1}
    assert table.device_nodes(3, kept.gi_id + 1, 0)

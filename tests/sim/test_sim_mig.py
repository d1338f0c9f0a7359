"""`gpu-dra bench mig` (MIG packing per strategy) and `simulate` on a dynamic-MIG cluster."""

from __future__ import annotations

import json

import pytest
import yaml

from driver import cli
from driver.sim import migbench

# two small dynamic-MIG nodes: 4 GPUs, 32 memory slices
CLUSTER = """
nodes:
  - {name: a, cpu: "64", memory: 512Gi, nvml: {profile: A100-SXM4-80GB, gpuCount: 2}, sharing: {mode: dynamic}}
  - {name: b, cpu: "64", memory: 512Gi, nvml: {profile: A100-SXM4-80GB, gpuCount: 2}, sharing: {mode: dynamic}}
"""
KEYS = {"strategy", "seed", "pods", "placed", "gpus", "gpusTouchedAtHalf", "gpuUsedPercent",
        "firstFailureAtPercent", "fragmentFailures", "seconds"}


@pytest.fixture
def cluster(tmp_path):
    path = tmp_path / "cluster.yaml"
    path.write_text(CLUSTER)
    return path


def test_workload_is_seeded_and_stops_at_the_load():
    a, b = migbench.workload(5, 4, 1.3), migbench.workload(5, 4, 1.3)
    assert [p["metadata"]["labels"] for p, _, _ in a] == [p["metadata"]["labels"] for p, _, _ in b]
    slices = [s for _, _, s in a]
    assert sum(slices) >= 1.3 * 4 * migbench.SLICES > sum(slices[:-1])
    profiles = {p["metadata"]["labels"]["profile"] for p, _, _ in migbench.workload(1, 64, 1.3)}
    assert profiles == {m[0] for m in migbench.MIX}


def test_bench_mig_json_lines(cluster, capsys):
    rc = cli.main(["bench", "mig", "--cluster", str(cluster), "--strategy", "binpack,spread", "--seeds", "3-4",
                   "--json"])
    assert rc == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(r["strategy"], r["seed"]) for r in rows] == [("binpack", 3), ("binpack", 4), ("spread", 3), ("spread", 4)]
    for r in rows:
        assert set(r) == KEYS
        assert r["gpus"] == 4 and 0 < r["placed"] < r["pods"]  # 130 % arrived: not everything fits
        assert 0 < r["gpuUsedPercent"] <= 100 and r["firstFailureAtPercent"] <= 100
        assert 0 <= r["fragmentFailures"] <= r["pods"] - r["placed"]
        assert 1 <= r["gpusTouchedAtHalf"] <= 4


def test_bench_mig_light_load_places_everything(cluster, capsys):
    rc = cli.main(["bench", "mig", "--cluster", str(cluster), "--strategy", "fragmentation", "--seeds", "1",
                   "--load", "0.3", "--json"])
    assert rc == 0
    (row,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert row["placed"] == row["pods"] and row["fragmentFailures"] == 0 and row["firstFailureAtPercent"] == 100.0


def test_bench_mig_table_and_workload_replay_through_simulate(cluster, tmp_path, capsys):
    work = tmp_path / "work.yaml"
    rc = cli.main(["bench", "mig", "--cluster", str(cluster), "--strategy", "binpack", "--seeds", "2",
                   "--write-workload", str(work)])
    assert rc == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[:3] == ["strategy", "seeds", "placed"] and "fragment failures" in out[0]
    assert out[1].split()[:2] == ["binpack", "1"]
    placed = int(float(out[1].split()[2].split("/")[0]))
    assert "workload of seed 2" in out[2] and str(work) in out[2]
    kinds = [d["kind"] for d in yaml.safe_load_all(work.read_text())]
    assert set(kinds) == {"ResourceClaim", "Pod"} and kinds.count("Pod") == kinds.count("ResourceClaim")
    # the same pods through `simulate`: the same engine, the same result
    rc = cli.main(["simulate", "--cluster", str(cluster), "--workload", str(work), "--strategy", "binpack", "--json"])
    assert rc == 0
    assert json.loads(capsys.readouterr().out)["summary"]["placed"] == placed


def test_simulate_counts_allocated_devices_not_blocked_ones(cluster, tmp_path, capsys):
    pod, claim = migbench.pod_and_claim(0, "7g.80gb")
    work = tmp_path / "one.yaml"
    work.write_text(yaml.safe_dump_all([claim, pod]))
    rc = cli.main(["simulate", "--cluster", str(cluster), "--workload", str(work), "--json"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    # one 7g instance: one device in use (its siblings are blocked, not allocated), 1 of 4 GPUs
    assert out["summary"]["devicesTouched"] == 1 and out["summary"]["gpuAllocatedPercent"] == 25.0
    used = [row for node in out["nodes"] for row in node["devices"] if row["allocatedMilli"]]
    assert [row["pods"] for row in used] == [["mig-0"]]


@pytest.mark.parametrize("args, message", [
    (["--load", "0"], "--load: expected a number in (0, 10]"),
    (["--strategy", "tetris"], "--strategy: unknown strategy 'tetris'"),
    (["--seeds", "x"], "--seeds: 'x' is not a seed"),
])
def test_bench_mig_bad_arguments(args, message, capsys):
    with pytest.raises(SystemExit):
        cli.main(["bench", "mig", *args])
    assert message in capsys.readouterr().err


def test_bench_mig_bad_cluster(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("nodes: [{name: a, cpu: lots}]\n")
    with pytest.raises(SystemExit, match=r"nodes\[0\]"):
        cli.main(["bench", "mig", "--cluster", str(bad), "--strategy", "binpack", "--seeds", "1"])


def test_bench_mig_cluster_without_gpus(tmp_path):
    cpu_only = tmp_path / "cpu.yaml"
    cpu_only.write_text('nodes: [{name: a, cpu: "8", memory: 16Gi}]\n')
    with pytest.raises(SystemExit, match="no GPUs to pack"):
        cli.main(["bench", "mig", "--cluster", str(cpu_only), "--strategy", "binpack", "--seeds", "1"])

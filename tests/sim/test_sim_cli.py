"""`gpu-dra bench trace` and `gpu-dra simulate` end to end through the CLI (small inputs)."""

from __future__ import annotations

import json

import pytest

from driver import cli
from driver.sim import trace as tr

NODES = "sn,cpu_milli,memory_mib,gpu,model\nn0,32000,131072,1,T4\n"
PODS = "name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec\n" + "".join(
    f"p{i},1000,1024,1,{m},\n" for i, m in enumerate([600, 600, 400, 300, 200, 700]))


@pytest.fixture
def files(tmp_path):
    nodes, pods = tmp_path / "nodes.csv", tmp_path / "pods.csv"
    nodes.write_text(NODES)
    pods.write_text(PODS)
    return nodes, pods


def _expected_alloc130(pods_path, seed: int) -> float:
    """One GPU: a pod fits iff its share is still free, whatever the strategy."""
    order = tr.arrival_order(tr.load_pods(pods_path), 1, seed)
    free = 1000
    for p in order:
        if p.gpu_milli <= free:
            free -= p.gpu_milli
    return round((1000 - free) / 10, 2)


def test_bench_trace_json_lines(files, capsys):
    nodes, pods = files
    rc = cli.main(["bench", "trace", "--nodes", str(nodes), "--pods", str(pods), "--strategy", "all",
                   "--seeds", "1-2", "--json", "--curve"])
    assert rc == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(r["strategy"], r["seed"]) for r in rows] == [
        (s, seed) for s in ("fragmentation", "fgd", "binpack", "spread") for seed in (1, 2)]
    for r in rows:
        assert set(r) >= {"seed", "alloc130", "alloc100", "pods", "failed", "seconds"}
        order = tr.arrival_order(tr.load_pods(pods), 1, r["seed"])
        assert r["pods"] == len(order)
        # arrivals step by >= 200 milli (20 %), so the last event owns its column of the curve
        last = round(sum(p.gpu_demand for p in order) / 10)
        assert r["curve"][last] == _expected_alloc130(pods, r["seed"])


def test_bench_trace_table_and_plot(files, tmp_path, capsys):
    nodes, pods = files
    plot = tmp_path / "fig.png"
    rc = cli.main(["bench", "trace", "--nodes", str(nodes), "--pods", str(pods), "--strategy", "binpack,spread",
                   "--seeds", "3", "--plot", str(plot)])
    assert rc == 0
    captured = capsys.readouterr()
    assert "binpack" in captured.out and "spread" in captured.out and f"plot written to {plot}" in captured.out
    assert "[##############################]" in captured.err  # progress bar
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bench_trace_bundled_subset(capsys):
    rc = cli.main(["bench", "trace", "--trace", "gpuspec20", "--limit", "150", "--json", "--seeds", "42"])
    assert rc == 0
    (row,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert row["pods"] == 150 and row["trace"] == "gpuspec20" and row["alloc130"] is None


@pytest.mark.parametrize("args, message", [
    (["--seeds", "x"], "--seeds: 'x' is not a seed"),
    (["--strategy", "tetris"], "--strategy: unknown strategy 'tetris'"),
    (["--limit", "-1"], "--limit: expected a non-negative number of pods, got '-1'"),
    (["--limit", "ten"], "--limit: expected a non-negative number of pods, got 'ten'"),
])
def test_bench_trace_bad_arguments(args, message, capsys):
    with pytest.raises(SystemExit):
        cli.main(["bench", "trace", *args])
    assert message in capsys.readouterr().err


def test_bench_trace_bad_files(tmp_path, files):
    nodes, _ = files
    with pytest.raises(SystemExit, match="cannot read trace file"):
        cli.main(["bench", "trace", "--nodes", str(nodes), "--pods", str(tmp_path / "none.csv")])
    with pytest.raises(SystemExit, match="--trace: unknown trace 'nope'"):
        cli.main(["bench", "trace", "--trace", "nope"])
    bad = tmp_path / "cfg.yaml"
    bad.write_text("weights: {gpu: heavy}\n")
    with pytest.raises(SystemExit, match=r"packing|weights.gpu: expected a number"):
        cli.main(["bench", "trace", "--nodes", str(nodes), "--config", str(bad)])


WORKLOAD = """
apiVersion: resource.k8s.io/v1
kind: ResourceClaimTemplate
metadata: {name: quarter}
spec:
  spec:
    devices:
      requests:
      - name: gpu
        exactly:
          deviceClassName: fractional.gpu.nvidia.com
          capacity: {requests: {compute: 250m}}
"""


def _pod_yaml(name: str, template: str = "quarter") -> str:
    return f"""---
apiVersion: v1
kind: Pod
metadata: {{name: {name}}}
spec:
  containers: [{{name: c, image: x, resources: {{requests: {{cpu: "1", memory: 1Gi}}, claims: [{{name: gpu}}]}}}}]
  resourceClaims: [{{name: gpu, resourceClaimTemplateName: {template}}}]
"""


@pytest.mark.parametrize("strategy, gpus_touched", [("binpack", 1), ("spread", 2)])
def test_simulate_yaml_workload_on_csv_cluster(tmp_path, capsys, strategy, gpus_touched):
    nodes = tmp_path / "nodes.csv"
    nodes.write_text("sn,cpu_milli,memory_mib,gpu,model\nn0,32000,131072,2,T4\nn1,32000,131072,2,T4\n")
    work = tmp_path / "work.yaml"
    work.write_text(WORKLOAD + _pod_yaml("a") + _pod_yaml("b") + _pod_yaml("c", "missing-template"))
    with pytest.raises(SystemExit, match="no ResourceClaimTemplate 'missing-template'"):
        cli.main(["simulate", "--cluster", str(nodes), "--workload", str(work)])
    work.write_text(WORKLOAD + _pod_yaml("a") + _pod_yaml("b"))
    rc = cli.main(["simulate", "--cluster", str(nodes), "--workload", str(work), "--strategy", strategy, "--json"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert out["summary"]["placed"] == 2 and out["summary"]["devicesTouched"] == gpus_touched
    rc = cli.main(["simulate", "--cluster", str(nodes), "--workload", str(work), "--strategy", strategy])
    text = capsys.readouterr().out
    assert "summary: 2/2 pods placed" in text and "a 250m" in text


def test_simulate_csv_workload_with_seed(files, capsys):
    nodes, pods = files
    rc = cli.main(["simulate", "--cluster", str(nodes), "--workload", str(pods), "--seed", "1", "--json"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert out["summary"]["gpuAllocatedPercent"] == _expected_alloc130(pods, 1)
    assert all("0/1 nodes are available" in u["reason"] for u in out["unschedulable"])


def test_simulate_on_the_default_local_cluster(tmp_path, capsys):
    """The local-cluster description goes through the devices part (mock NVML → ResourceSlices)."""
    work = tmp_path / "work.yaml"
    whole = WORKLOAD.replace("quarter", "whole").replace(
        "deviceClassName: fractional.gpu.nvidia.com\n          capacity: {requests: {compute: 250m}}",
        "deviceClassName: gpu.nvidia.com")
    work.write_text(WORKLOAD + "---" + whole + _pod_yaml("notebook") + _pod_yaml("train", "whole"))
    rc = cli.main(["simulate", "--workload", str(work), "--strategy", "binpack", "--json"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    placed = {p["pod"]: p for p in out["placements"]}
    assert set(placed) == {"notebook", "train"} and out["summary"]["unschedulable"] == 0
    assert placed["notebook"]["node"] == "gpu-a100-frac"  # the only fractional GPUs


def test_simulate_uses_the_workloads_own_device_class(tmp_path, capsys):
    """A DeviceClass listed in the workload YAML is known to the scheduler (the state is built
    with it, not only the cluster's classes)."""
    work = tmp_path / "work.yaml"
    work.write_text(
        "apiVersion: resource.k8s.io/v1\nkind: DeviceClass\nmetadata: {name: mygpu.example.com}\n"
        "spec: {selectors: [{cel: {expression: \"device.driver == 'gpu.nvidia.com'\"}}]}\n---\n"
        "apiVersion: resource.k8s.io/v1\nkind: ResourceClaim\nmetadata: {name: c1, namespace: default, uid: u-c1}\n"
        "spec: {devices: {requests: [{name: gpu, exactly: {deviceClassName: mygpu.example.com}}]}}\n---\n"
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p1, namespace: default, uid: u-p1}\n"
        "spec: {containers: [{name: main, image: x, resources: {claims: [{name: gpu}]}}],"
        " resourceClaims: [{name: gpu, resourceClaimName: c1}]}\n")
    rc = cli.main(["simulate", "--workload", str(work), "--json"])
    out = json.loads(capsys.readouterr().out)
    assert rc == 0
    assert out["unschedulable"] == []
    assert [p["pod"] for p in out["placements"]] == ["p1"]

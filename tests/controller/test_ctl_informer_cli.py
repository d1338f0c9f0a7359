"""Informer re-list on 410, metrics/healthz endpoint, and the `status`/`controller` commands."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from ctl_helpers import Api, claim, claim_spec, controller, gpu_devices, kube_for, node, pod, resource_slice
from wait_helpers import wait_for

from driver.cli import main
from driver.controller.informers import Informer
from driver.controller.kube import NODES
from driver.controller.leader import LeaseConfig
from driver.controller.metrics import MetricsServer


def test_informer_relists_after_410_and_reports_missed_deletions(server, api: Api) -> None:
    api.create(node("a"))
    seen: list[tuple[str, str]] = []
    inf = Informer(kube_for(server), NODES, watch_timeout=1)
    inf.add_handler(lambda ev, old, new: seen.append((ev, (new or old)["metadata"]["name"])))
    inf.start()
    try:
        assert inf.wait_synced(10)
        rule = server.faults.set(verb="watch", resource="nodes", error_rate=1.0)
        wait_for(lambda: inf.failures > 0, 20, "the watch to be cut off")
        api.kube.call(api.kube.core.delete_node, "a")
        api.create(node("b"))
        server.store.compact()  # the history the informer would resume from is gone
        server.faults.remove(rule)
        wait_for(lambda: inf.relists > 0 and inf.get("b") is not None, 20, "re-list after 410")
        assert inf.get("a") is None
        assert ("DELETED", "a") in seen and ("ADDED", "b") in seen
        api.create(node("c"))  # and the watch resumes after the re-list
        wait_for(lambda: inf.get("c") is not None, 20, "watch resumed")
    finally:
        inf.stop()


def test_metrics_and_healthz(server, api: Api) -> None:
    api.create(node("n1"))
    api.create(resource_slice("n1", gpu_devices("n1", 2)))
    api.create(claim("c", claim_spec()))
    api.create(pod("p", {"gpu": "c"}))
    with controller(server) as c:
        wait_for(lambda: api.pod("p")["spec"].get("nodeName"), 20, "bound")
        http = MetricsServer(c.metrics, c.healthy, port=0, host="127.0.0.1")
        try:
            base = f"http://127.0.0.1:{http.port}"
            text = wait_for(lambda: (lambda t: t if 'gpu_dra_scheduling_attempts_total{result="scheduled"} 1.0' in t
                                     else None)(urllib.request.urlopen(base + "/metrics").read().decode()), 10,
                            "attempt counted")
            assert 'gpu_dra_gpu_allocated_share{gpu="gpu-0",mode="whole",node="n1"} 1.0' in text
            assert 'gpu_dra_node_allocated_gpus{node="n1"} 1.0' in text
            assert 'gpu_dra_node_allocated_share{node="n1"} 0.5' in text
            assert "gpu_dra_queue_depth" in text and "gpu_dra_scheduling_attempt_duration_seconds_bucket" in text
            assert urllib.request.urlopen(base + "/healthz").read() == b"ok\n"
            with pytest.raises(urllib.error.HTTPError) as err:
                urllib.request.urlopen(base + "/nope")
            assert err.value.code == 404
        finally:
            http.stop()


def test_status_command_table_and_json(server, api: Api, capsys: pytest.CaptureFixture[str]) -> None:
    api.create(node("n1"))
    api.create(resource_slice("n1", gpu_devices("n1", 2)))
    api.create(claim("c", claim_spec()))
    api.create(pod("p", {"gpu": "c"}))
    with controller(server):
        wait_for(lambda: api.pod("p")["spec"].get("nodeName"), 20, "bound")
    kc = str(server.kubeconfig_path)
    assert main(["status", "--kubeconfig", kc]) == 0
    out = capsys.readouterr().out
    assert "default/c" in out and "default/p" in out and "whole" in out and "touched 1" in out
    assert main(["status", "--kubeconfig", kc, "-o", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["summary"]["gpus"] == 2 and doc["summary"]["gpus_touched"] == 1


def test_status_command_unreachable_cluster_is_one_clear_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    kc = tmp_path / "kc"
    kc.write_text("apiVersion: v1\nkind: Config\nclusters: [{name: x, cluster: {server: 'http://127.0.0.1:9'}}]\n"
                  "users: [{name: x, user: {}}]\ncontexts: [{name: x, context: {cluster: x, user: x}}]\n"
                  "current-context: x\n")
    assert main(["status", "--kubeconfig", str(kc)]) == 1
    err = capsys.readouterr().err
    assert any(line.startswith("gpu-dra status: cannot read the cluster") for line in err.splitlines())
    assert "Traceback" not in err


@pytest.mark.parametrize("content,expected", [
    ("strategy: nosuch\n", "unknown scheduling strategy 'nosuch'"),
    ("weights: {gpu: -1}\n", "weights.gpu"),
    ("bogus: 1\n", "bogus: unknown field"),
    ("[unclosed\n", "--config"),
])
def test_controller_rejects_bad_packing_config(tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str,
                                              expected: str) -> None:
    cfg = tmp_path / "packing.yaml"
    cfg.write_text(content)
    assert main(["controller", "--kubeconfig", "/nonexistent", "--config", str(cfg)]) == 2
    assert expected in capsys.readouterr().err


def test_controller_missing_config_file(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["controller", "--config", "/no/such/packing.yaml"]) == 2
    assert "/no/such/packing.yaml" in capsys.readouterr().err


@pytest.mark.parametrize("kw,field", [
    (dict(lease_duration=2, renew_deadline=3, retry_period=1), "renew_deadline < lease_duration"),
    (dict(retry_period=0), "0 < retry_period"),
    (dict(identity=""), "identity"),
])
def test_lease_config_validation(kw: dict, field: str) -> None:
    with pytest.raises(ValueError, match="leader election") as err:
        LeaseConfig(**kw)
    assert field in str(err.value)


def test_bench_and_demo_reject_bad_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "controller", "--nodes", "ten"]) == 2
    assert "--nodes" in capsys.readouterr().err
    assert main(["bench", "controller", "--mode", "fast"]) == 2
    assert "--mode" in capsys.readouterr().err
    assert main(["demo", "--strategy", "binpack,random"]) == 2
    assert "unknown scheduling strategy 'random'" in capsys.readouterr().err

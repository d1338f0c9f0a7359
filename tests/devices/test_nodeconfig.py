"""Node config parsing: defaults, per-GPU overrides, and errors that name the field."""

from __future__ import annotations

import pytest

from driver.devices.nodeconfig import NodeConfigError, Sharing, load_node_config, parse_node_config, with_mode


def test_defaults_and_overrides(tmp_path):
    assert load_node_config(None).for_gpu(3) == Sharing("whole", 0)
    f = tmp_path / "config.yaml"
    f.write_text(
        "driverName: gpu.example.com\n"
        "sharing: {mode: dynamic, replicas: 2}\n"
        "gpus:\n  \"1\": {mode: timeslicing, replicas: 4}\n  2: {mode: fractional}\n"
    )
    cfg = load_node_config(f)
    assert cfg.driver_name == "gpu.example.com"
    assert cfg.for_gpu(0) == Sharing("dynamic", 2)
    assert cfg.for_gpu(1) == Sharing("timeslicing", 4)
    assert cfg.for_gpu(2) == Sharing("fractional", 0)
    assert load_node_config({"sharing": {"mode": "dynamic"}}).sharing.replicas == 0


def test_cli_override_keeps_per_gpu_settings():
    cfg = load_node_config({"gpus": {"0": {"mode": "mig"}}})
    over = with_mode(cfg, "timeslicing", None)
    assert over.sharing == Sharing("timeslicing", 4) and over.for_gpu(0) == Sharing("mig", 0)
    with pytest.raises(NodeConfigError, match="--mode/--replicas.replicas: only valid with mode timeslicing or dynamic"):
        with_mode(cfg, "whole", 3)


@pytest.mark.parametrize(
    "raw, message",
    [
        ({"sharing": {"mode": "mps"}}, "sharing.mode: expected one of whole, mig, timeslicing, dynamic, fractional; got 'mps'"),
        ({"sharing": {"mode": "timeslicing"}}, "sharing.replicas: required for mode timeslicing"),
        ({"sharing": {"mode": "timeslicing", "replicas": 1}}, "sharing.replicas: must be >= 2"),
        ({"sharing": {"mode": "timeslicing", "replicas": 1000}}, "sharing.replicas: must be <= 64"),
        ({"sharing": {"mode": "timeslicing", "replicas": "4"}}, "sharing.replicas: expected an integer"),
        ({"sharing": {"mode": "whole", "replicas": 2}}, "sharing.replicas: only valid with mode timeslicing or dynamic"),
        ({"sharing": {"mode": "whole", "extra": 1}}, "sharing: unknown field(s) extra"),
        ({"sharing": {}}, "sharing: missing required field(s) mode"),
        ({"sharingMode": "whole"}, "unknown field(s) sharingMode"),
        ({"gpus": {"first": {"mode": "whole"}}}, "gpus.first: keys are GPU indexes"),
        ({"gpus": {"1": {"mode": "dynamic", "replicas": -1}}}, "gpus.1.replicas: must be >= 0"),
        ({"driverName": "GPU_Driver"}, "driverName: 'GPU_Driver' is not a DNS subdomain"),
        (["whole"], "expected a mapping, got list"),
    ],
)
def test_malformed_configs_name_the_field(raw, message):
    with pytest.raises(NodeConfigError) as exc:
        parse_node_config(raw)
    assert message in str(exc.value)


def test_unreadable_or_invalid_yaml_file(tmp_path):
    with pytest.raises(NodeConfigError, match="cannot read"):
        load_node_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("sharing: {mode: whole\n")
    with pytest.raises(NodeConfigError, match="not valid YAML"):
        load_node_config(bad)

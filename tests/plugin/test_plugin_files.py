"""CDI spec files and the checkpoint file: content, schema, versions, atomicity, corruption."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import referencing

from driver.plugin import cdi
from driver.plugin import checkpoint as ckpt
from driver.plugin.checkpoint import Checkpoint, ClaimRecord, PreparedDevice
from driver.plugin.inventory import AllocatableDevice
from driver.plugin.state import DeviceState, StateOptions

SCHEMA_DIR = Path(__file__).parents[1] / "data" / "cdi"


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft7Validator:
    registry = referencing.Registry().with_resource(
        "defs.json", referencing.Resource.from_contents(json.loads((SCHEMA_DIR / "defs.json").read_text()),
                                                        default_specification=referencing.jsonschema.DRAFT7))
    return jsonschema.Draft7Validator(json.loads((SCHEMA_DIR / "schema.json").read_text()), registry=registry)


def test_spec_with_everything_is_schema_valid(validator: jsonschema.Draft7Validator) -> None:
    devices = [
        cdi.DeviceEdits("gpu-0", env={"CUDA_MPS_PIPE_DIRECTORY": "/tmp/nvidia-mps"}, device_nodes=["/dev/nvidia0"],
                        mounts=[("/var/lib/x/pipe", "/tmp/nvidia-mps"), ("/var/lib/x/shm", "/dev/shm")]),
        cdi.DeviceEdits("gpu-1"),
    ]
    spec = cdi.build_spec("a1b2", devices, {"NVIDIA_VISIBLE_DEVICES": "GPU-1,GPU-2"}, ["/dev/nvidiactl"])
    assert not list(validator.iter_errors(spec))
    assert spec["kind"] == "k8s.gpu.nvidia.com/claim"
    assert spec["devices"][1] == {"name": "a1b2-gpu-1", "containerEdits": {}}
    assert spec["devices"][0]["containerEdits"]["deviceNodes"] == [{"path": "/dev/nvidia0"}]
    assert spec["containerEdits"] == {"env": ["NVIDIA_VISIBLE_DEVICES=GPU-1,GPU-2"],
                                      "deviceNodes": [{"path": "/dev/nvidiactl"}]}


@pytest.mark.parametrize("uid, extra, version", [
    ("abc", {}, "0.3.0"),  # env/devices/mounts only
    ("0bc", {}, "0.5.0"),  # a device name starting with a digit
    ("abc", {"annotations": {"a": "b"}}, "0.6.0"),
])
def test_lowest_sufficient_version(uid: str, extra: dict, version: str) -> None:
    spec = cdi.build_spec(uid, [cdi.DeviceEdits("gpu-0", env={"A": "1"})])
    spec.update(extra)
    assert cdi.required_version(spec) == version


def test_mount_type_needs_0_4_0() -> None:
    spec = cdi.build_spec("abc", [cdi.DeviceEdits("gpu-0", mounts=[("/a", "/b")])])
    assert cdi.required_version(spec) == "0.3.0"
    spec["devices"][0]["containerEdits"]["mounts"][0]["type"] = "bind"
    assert cdi.required_version(spec) == "0.4.0"


def test_build_spec_without_devices_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one device"):
        cdi.build_spec("abc", [])


def test_atomic_write_replace_and_delete(tmp_path: Path) -> None:
    first = cdi.build_spec("u1", [cdi.DeviceEdits("gpu-0", env={"A": "1"})])
    path = cdi.write_spec(tmp_path, "u1", first)
    assert path == tmp_path / "k8s.gpu.nvidia.com-claim_u1.json"
    assert json.loads(path.read_text()) == first
    with pytest.raises(TypeError):
        cdi.write_spec(tmp_path, "u1", {"cdiVersion": "0.3.0", "bad": object()})  # fails mid-write
    assert json.loads(path.read_text()) == first  # the old spec is intact
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]  # no temp file left
    (tmp_path / ".k8s.gpu.nvidia.com-claim_u2.json.x.tmp").write_text("{")  # what a crash leaves
    assert cdi.list_claim_uids(tmp_path) == ["u1"]
    assert cdi.remove_stale_temp_files(tmp_path) == 1
    assert cdi.delete_spec(tmp_path, "u1") is True
    assert cdi.delete_spec(tmp_path, "u1") is False
    assert list(tmp_path.iterdir()) == []


def _sample() -> Checkpoint:
    dev = PreparedDevice(["gpu"], "node-a", "gpu-0", "gpu", "GPU-1", cdi_device_ids=["k8s.gpu.nvidia.com/claim=u-gpu-0"],
                         timeslice_interval="Long")
    return Checkpoint("boot-1", {"u": ClaimRecord("u", "ns", "c", ckpt.PREPARE_COMPLETED, [dev], "")})


def test_checkpoint_round_trip(tmp_path: Path) -> None:
    assert ckpt.load(tmp_path) is None
    ckpt.save(tmp_path, _sample())
    assert ckpt.load(tmp_path) == _sample()
    assert [p.name for p in tmp_path.iterdir()] == [ckpt.FILE_NAME]


@pytest.mark.parametrize("damage, message", [
    (lambda t: t[: len(t) // 2], "not valid JSON"),
    (lambda t: "", "not valid JSON"),
    (lambda t: t.replace('"Long"', '"Short"'), "checksum mismatch"),
    (lambda t: '{"checksum": "x"}', "expected an object with 'checksum' and 'data'"),
    (lambda t: "[1, 2]", "expected an object with 'checksum' and 'data'"),
    (lambda t: "\udcff".encode("utf-8", "surrogateescape").decode("latin-1"), "not valid JSON"),
])
def test_checkpoint_corruption_detected(tmp_path: Path, damage, message: str) -> None:
    ckpt.save(tmp_path, _sample())
    path = tmp_path / ckpt.FILE_NAME
    path.write_text(damage(path.read_text()), encoding="latin-1")
    with pytest.raises(ckpt.CheckpointCorrupt, match=message):
        ckpt.load(tmp_path)


def test_checkpoint_future_format_refused(tmp_path: Path) -> None:
    cp = _sample()
    ckpt.save(tmp_path, cp)
    path = tmp_path / ckpt.FILE_NAME
    doc = json.loads(path.read_text())
    doc["data"]["version"] = 99
    doc["checksum"] = ckpt._checksum(doc["data"])
    path.write_text(json.dumps(doc))
    with pytest.raises(ckpt.CheckpointCorrupt, match="unsupported format version 99"):
        ckpt.load(tmp_path)


def _state(tmp_path: Path, claims: dict | None = None) -> DeviceState:
    devices = {"gpu-0": AllocatableDevice("gpu-0", "gpu", 0, 0, "GPU-1")}
    return DeviceState(StateOptions("node-a", "gpu.nvidia.com", str(tmp_path / "cdi"), str(tmp_path / "state")),
                       devices=lambda: devices, get_claim=lambda ns, name: (claims or {}).get(name))


def test_reboot_forgets_prepared_claims_and_their_files(tmp_path: Path) -> None:
    """After a reboot MIG instances and daemons are gone: records and CDI files are dropped so
    kubelet's next prepare starts from scratch."""
    cp = _sample()
    cp.boot_id = "a-previous-boot"
    ckpt.save(tmp_path / "state", cp)
    cdi.write_spec(tmp_path / "cdi", "u", cdi.build_spec("u", [cdi.DeviceEdits("gpu-0")]))
    state = _state(tmp_path)
    state.recover()
    assert state.checkpoint.claims == {} and cdi.list_claim_uids(tmp_path / "cdi") == []
    assert ckpt.load(tmp_path / "state").boot_id == ckpt.read_boot_id()


def test_half_prepared_claim_rolled_back_on_start(tmp_path: Path) -> None:
    cp = _sample()
    cp.boot_id = ckpt.read_boot_id()
    cp.claims["u"].state = ckpt.PREPARE_STARTED
    cp.claims["u"].devices[0].timeslice_interval = ""
    ckpt.save(tmp_path / "state", cp)
    cdi.write_spec(tmp_path / "cdi", "u", cdi.build_spec("u", [cdi.DeviceEdits("gpu-0")]))
    cdi.write_spec(tmp_path / "cdi", "orphan", cdi.build_spec("orphan", [cdi.DeviceEdits("gpu-0")]))
    state = _state(tmp_path)
    state.recover()
    assert state.checkpoint.claims == {}
    assert cdi.list_claim_uids(tmp_path / "cdi") == []


def test_unknown_crash_point_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="GPU_DRA_CRASH_AT: expected one of after-checkpoint-started"):
        DeviceState(StateOptions("n", "d", str(tmp_path), str(tmp_path), crash_at="after-lunch"),
                    devices=dict, get_claim=lambda ns, n: None)

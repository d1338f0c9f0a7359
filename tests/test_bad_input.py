"""Bad input files and values given to the `gpu-dra` commands: each is one line on stderr naming the
file or field, exit status 2, never a traceback."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import yaml

from driver import cli
from driver.allocator.request import ClaimError, prepare
from driver.cliinput import BAD_YAML, MISSING, NOT_TEXT, FlagError, InputFileError, load_yaml, load_yaml_all, rfc3339
from driver.scheduler.packing.config import ConfigError, parse_config

BINARY = bytes([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 0xFF, 0xFE, 0x00, 0x01]) * 20  # a PNG header, etc.
GPU_CLASS = {"apiVersion": "resource.k8s.io/v1", "kind": "DeviceClass", "metadata": {"name": "gpu.nvidia.com"},
             "spec": {"selectors": [{"cel": {"expression": "device.driver == 'gpu.nvidia.com'"}}]}}


def _claim(**exactly: object) -> dict:
    return {"apiVersion": "resource.k8s.io/v1", "kind": "ResourceClaim",
            "metadata": {"name": "c", "namespace": "default", "uid": "uid-c"},
            "spec": {"devices": {"requests": [{"name": "g", "exactly": {"deviceClassName": "gpu.nvidia.com",
                                                                          **exactly}}]}}}


@pytest.fixture
def binary(tmp_path: Path) -> str:
    path = tmp_path / "image.png"
    path.write_bytes(BINARY)
    return str(path)


@pytest.fixture
def nul(tmp_path: Path) -> str:
    """Valid UTF-8, but with a NUL byte: PyYAML's reader refuses it with a multi-line message."""
    path = tmp_path / "nul.yaml"
    path.write_bytes(b"kind: Node\nname: a\x00b\n")
    return str(path)


def _gpu_dra(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    capsys.readouterr()
    try:
        rc = cli.main(["--log-format", "console", *argv])
    except SystemExit as exc:  # the sim commands exit with SystemExit(2)
        rc = exc.code
    return rc, capsys.readouterr().err


def _one_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err and "Error:" not in lines[0].split(":", 1)[0], err
    return lines[0]


# ---- the shared reader -----------------------------------------------------------------------


def test_binary_file_is_not_text(binary: str) -> None:
    with pytest.raises(InputFileError) as err:
        load_yaml(binary, "--config")
    assert err.value.kind == NOT_TEXT and err.value.path == binary
    assert str(err.value).startswith(f"--config {binary}: not UTF-8 text (binary?)")
    assert "\n" not in str(err.value)


def test_missing_file_names_it(tmp_path: Path) -> None:
    missing = str(tmp_path / "nope.yaml")
    with pytest.raises(InputFileError) as err:
        load_yaml_all(missing)
    assert err.value.kind == MISSING and str(err.value) == f"{missing}: No such file or directory"


def test_directory_is_unreadable(tmp_path: Path) -> None:
    with pytest.raises(InputFileError) as err:
        load_yaml(tmp_path)
    assert err.value.kind not in (NOT_TEXT, BAD_YAML) and str(tmp_path) in str(err.value)


def test_bad_yaml_has_line_and_column_on_one_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("a: 1\nb: [1, 2\nc: 3\n")
    with pytest.raises(InputFileError) as err:
        load_yaml(path)
    e = err.value
    assert e.kind == BAD_YAML and e.line == 3 and e.column is not None and e.problem
    assert str(e).startswith(f"{path}: not YAML/JSON at line 3, column ")
    assert "\n" not in str(e)


def test_nul_byte_is_a_one_line_yaml_error_with_its_line(nul: str) -> None:
    with pytest.raises(InputFileError) as err:
        load_yaml(nul)
    assert err.value.kind == BAD_YAML and err.value.line == 2
    assert "#x0000" in str(err.value) and "\n" not in str(err.value)


def test_utf8_bom_and_multiple_documents_are_fine(tmp_path: Path) -> None:
    path = tmp_path / "bom.yaml"
    path.write_bytes("\ufeffa: 1\n---\nb: 2\n".encode())
    assert load_yaml_all(path) == [{"a": 1}, {"b": 2}]


# ---- every command that reads a file -----------------------------------------------------------

COMMANDS = {
    "allocate -f": ["allocate", "-f", "{f}"],
    "schedule -f": ["schedule", "-f", "{f}"],
    "schedule --config": ["schedule", "-f", "{ok}", "--config", "{f}"],
    "controller --config": ["controller", "--config", "{f}"],
    "discover --config": ["discover", "--nvml", "mock:a100-80gb-mixed", "--node", "n1", "--config", "{f}"],
    "simulate --cluster": ["simulate", "--cluster", "{f}", "--workload", "{ok}"],
    "simulate --workload": ["simulate", "--workload", "{f}"],
    "simulate --workload csv": ["simulate", "--workload", "{f}.csv"],
    "simulate --config": ["simulate", "--workload", "{ok}", "--config", "{f}"],
    "bench trace --config": ["bench", "trace", "--config", "{f}"],
    "bench trace --pods": ["bench", "trace", "--pods", "{f}.csv"],
    "local up --cluster": ["local", "up", "--kubeconfig", "{tmp}/kubeconfig", "--cluster", "{f}"],
}


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("bad", ["binary", "nul", "missing"])
def test_every_file_option_refuses_a_bad_file_in_one_line(command: str, bad: str, capsys, tmp_path: Path,
                                                           binary: str, nul: str) -> None:
    ok = tmp_path / "ok.yaml"
    ok.write_text(yaml.safe_dump(GPU_CLASS))
    path = {"binary": binary, "nul": nul, "missing": str(tmp_path / "missing")}[bad]
    argv = [a.format(f=path, ok=ok, tmp=tmp_path) for a in COMMANDS[command]]
    if Path(path).exists():  # the same bytes, for the options that take a trace CSV by its suffix
        Path(f"{path}.csv").write_bytes(Path(path).read_bytes())
    rc, err = _gpu_dra(capsys, *argv)
    line = _one_line(err)
    assert rc == 2, err
    named = next(a for a in argv if a.startswith(path))
    assert named in line, line
    want = {"binary": "not UTF-8 text (binary?)", "nul": "#x0000", "missing": "No such file or directory"}[bad]
    if bad == "nul" and named.endswith(".csv"):  # a NUL is allowed in CSV; this "CSV" has no header row
        want = "missing column(s)"
    assert want in line, line


def test_unparseable_trace_csv_is_refused_naming_the_file_and_line(capsys, tmp_path: Path) -> None:
    path = tmp_path / "pods.csv"
    path.write_text("name,cpu_milli,memory_mib,num_gpu,gpu_milli\n" + "p,1,1,1,1000\n" + "x" * 200_000 + ",1,1,1,1\n")
    rc, err = _gpu_dra(capsys, "bench", "trace", "--pods", str(path))
    line = _one_line(err)
    assert rc == 2 and f"{path}:3: not a CSV row: field larger than field limit" in line


# ---- values ------------------------------------------------------------------------------------


@pytest.mark.parametrize("field, raw", [
    ("thresholds.gpu", {"thresholds": {"gpu": math.nan}}),
    ("weights.gpu", {"weights": {"gpu": math.inf}}),
    ("weights.cpu", {"weights": {"cpu": -math.inf}}),
    ("coverage", {"coverage": math.nan}),
    ("pluginWeights.TaintToleration", {"pluginWeights": {"TaintToleration": math.nan}}),
])
def test_non_finite_packing_numbers_are_refused_naming_the_field(field: str, raw: dict) -> None:
    with pytest.raises(ConfigError, match=rf"cfg\.{field}: expected a finite number, got (nan|inf|-inf)"):
        parse_config(raw, "cfg")


def test_nan_threshold_in_a_config_file_exits_2(capsys, tmp_path: Path) -> None:
    cfg = tmp_path / "packing.yaml"
    cfg.write_text("thresholds:\n  gpu: .nan\n")
    ok = tmp_path / "ok.yaml"
    ok.write_text(yaml.safe_dump(GPU_CLASS))
    rc, err = _gpu_dra(capsys, "schedule", "-f", str(ok), "--config", str(cfg))
    assert rc == 2 and "thresholds.gpu: expected a finite number, got nan" in _one_line(err)


def test_finite_numbers_still_accepted() -> None:
    assert parse_config({"thresholds": {"gpu": 0.5}, "coverage": 1}, "cfg").coverage == 1.0


@pytest.mark.parametrize("capacity, message", [
    ({"requests": {"compute": "-1"}}, r"requests\[0\]\.exactly\.capacity\.requests\[compute\]: must not be negative"),
    ({"requests": {"memory": -5}}, r"capacity\.requests\[memory\]: must not be negative, got -5"),
    ({"requests": {"gpu.nvidia.com/compute": "-250m"}}, r"capacity\.requests\[gpu\.nvidia\.com/compute\]: must not"),
    ({"requests": ["compute"]}, r"exactly\.capacity\.requests: expected a mapping"),
    (["compute"], r"exactly\.capacity: expected a mapping"),
])
def test_bad_capacity_requests_are_refused_naming_the_field(capacity: object, message: str) -> None:
    with pytest.raises(ClaimError, match=message):
        prepare([_claim(capacity=capacity)], {"gpu.nvidia.com": GPU_CLASS})


def test_zero_and_positive_capacity_requests_are_accepted() -> None:
    prepared = prepare([_claim(capacity={"requests": {"compute": "0", "memory": "10Gi"}})], {"gpu.nvidia.com": GPU_CLASS})
    assert prepared is not None


@pytest.mark.parametrize("count, ok", [(2**63 - 1, True), (2**63, False), (10**30, False)])
def test_count_beyond_int64_is_refused(count: int, ok: bool) -> None:
    claims, classes = [_claim(count=count)], {"gpu.nvidia.com": GPU_CLASS}
    if ok:
        prepare(claims, classes)
    else:
        with pytest.raises(ClaimError, match=rf"requests\[0\]\.exactly\.count: expected at most {2**63 - 1}, got {count}"):
            prepare(claims, classes)


def test_negative_compute_from_the_allocate_command_exits_2(capsys, tmp_path: Path) -> None:
    path = tmp_path / "in.yaml"
    path.write_text(yaml.safe_dump_all([GPU_CLASS, _claim(capacity={"requests": {"compute": "-1"}})]))
    rc, err = _gpu_dra(capsys, "allocate", "-f", str(path))
    assert rc == 2 and "capacity.requests[compute]: must not be negative" in _one_line(err)


@pytest.mark.parametrize("value", ["yesterday", "2026-13-01T00:00:00Z", "2026-01-02 03:04:05Z", "2026-01-02T03:04:05",
                                   "2026-01-02", ""])
def test_now_must_be_rfc3339(value: str) -> None:
    with pytest.raises(FlagError, match=r"^--now: expected an RFC 3339 time"):
        rfc3339(value, "--now")


@pytest.mark.parametrize("value, want", [
    ("2026-01-02T03:04:05Z", "2026-01-02T03:04:05Z"),
    ("2026-01-02T03:04:05.123456Z", "2026-01-02T03:04:05Z"),
    ("2026-01-02T05:04:05+02:00", "2026-01-02T03:04:05Z"),
])
def test_rfc3339_times_are_written_as_the_api_server_does(value: str, want: str) -> None:
    assert rfc3339(value, "--now") == want


@pytest.mark.parametrize("command", ["schedule", "allocate"])
def test_now_yesterday_exits_2_naming_the_flag(command: str, capsys, tmp_path: Path) -> None:
    ok = tmp_path / "ok.yaml"
    ok.write_text(yaml.safe_dump(GPU_CLASS))
    rc, err = _gpu_dra(capsys, command, "-f", str(ok), "--now", "yesterday")
    assert rc == 2 and "--now: expected an RFC 3339 time" in _one_line(err) and "'yesterday'" in err


def test_node_and_model_files_name_a_binary_file(tmp_path):
    from driver.nvml.strict import DataError, load_yaml
    binary = tmp_path / "node.yaml"
    binary.write_bytes(b"\xb0\x00\xff")
    with pytest.raises(DataError, match=r"node config .*node.yaml: cannot read: not UTF-8 text \(binary\?\)"):
        load_yaml(binary, "node config")

"""`gpu-dra allocate`: offline dry-run from YAML files."""

from __future__ import annotations

import argparse
import json

import yaml
from alloc_fixtures import MIG_CLASS, claim, classes, gpu, mig, request, slice_

from driver.allocator import commands


def run(argv: list[str], capsys) -> tuple[int, str, str]:
    parser = argparse.ArgumentParser()
    commands.register(parser.add_subparsers())
    args = parser.parse_args(["allocate", *argv])
    rc = args.func(args)
    out = capsys.readouterr()
    return rc, out.out, out.err


def write(path, *objs) -> str:
    path.write_text(yaml.safe_dump_all(list(objs)))
    return str(path)


def cluster(tmp_path) -> str:
    used = claim("used", request("g"))
    used["status"] = {"allocation": {"devices": {"results": [
        {"request": "g", "driver": "gpu.nvidia.com", "pool": "n1", "device": "gpu-0"}]}}}
    listed = {"apiVersion": "v1", "kind": "List", "items": list(classes().values())}
    return write(tmp_path / "cluster.yaml", slice_("n1", [gpu(0), gpu(1)]), slice_("n2", [mig(0, "1g.10gb", 19, 0, 10, 1)]),
                 listed, used)


def test_dry_run_reports_where_it_fits_and_why_not(tmp_path, capsys):
    mine = write(tmp_path / "mine.yaml", claim("mine", request("g", count=1)))
    rc, out, _ = run(["-f", cluster(tmp_path), "-f", mine], capsys)
    assert rc == 0
    lines = out.splitlines()
    assert lines[0] == "n1: fits (default/mine: g→gpu-1)"  # gpu-0 is taken by the allocated claim
    assert lines[1].startswith("n2: does not fit: claim default/mine request g: no device of class 'gpu.nvidia.com'")


def test_dry_run_json_and_exit_code_when_nothing_fits(tmp_path, capsys):
    mine = write(tmp_path / "mine.yaml", claim("mine", request("g", count=2)))
    rc, out, _ = run(["-f", cluster(tmp_path), "-f", mine, "--node", "n1", "-o", "json"], capsys)
    assert rc == 1
    rows = json.loads(out)
    assert rows == [{"node": "n1", "fits": False, "permanent": False, "reason": rows[0]["reason"]}]
    assert "needs 2 device(s), 1 of 2 matching devices available on node n1" in rows[0]["reason"]


def test_dry_run_yaml_output_is_the_allocation(tmp_path, capsys):
    mine = write(tmp_path / "mine.yaml", claim("mine", request("m", MIG_CLASS)))
    rc, out, _ = run(["-f", cluster(tmp_path), "-f", mine, "--node", "n2", "-o", "yaml", "--now", "2026-01-01T00:00:00Z"],
                     capsys)
    assert rc == 0
    row = yaml.safe_load(out)[0]
    alloc = row["allocations"]["default/mine"]
    assert alloc["devices"]["results"][0]["device"] == "gpu-0-mig-1g10gb-19-0"
    assert alloc["allocationTimestamp"] == "2026-01-01T00:00:00Z"


def test_bad_inputs_are_named(tmp_path, capsys):
    bad_kind = write(tmp_path / "bad.yaml", {"kind": "Pod", "metadata": {"name": "p"}})
    rc, _, err = run(["-f", bad_kind], capsys)
    assert rc == 2 and "bad.yaml: Pod p: expected ResourceSlice, DeviceClass, ResourceClaim or Node" in err
    rc, _, err = run(["-f", cluster(tmp_path)], capsys)
    assert rc == 2 and "no unallocated ResourceClaim" in err
    unknown = write(tmp_path / "u.yaml", claim("u", request("g", "nope")))
    rc, _, err = run(["-f", cluster(tmp_path), "-f", unknown], capsys)
    assert rc == 2 and "device class 'nope' does not exist" in err
    rc, _, err = run(["-f", str(tmp_path / "missing.yaml")], capsys)
    assert rc == 2 and "missing.yaml: No such file or directory" in err
    (tmp_path / "broken.yaml").write_text("a: [")
    rc, _, err = run(["-f", str(tmp_path / "broken.yaml")], capsys)
    assert rc == 2 and "broken.yaml: not YAML/JSON" in err

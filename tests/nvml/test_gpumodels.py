"""GPU-model data files and MIG placement."""

from __future__ import annotations

import copy

import pytest
import yaml

from driver.nvml.gpumodels import PROFILE_DIR, available_models, load_model, parse_model
from driver.nvml.placement import PlacementError, is_legal, place
from driver.nvml.strict import DataError

MIG_MODELS = ["A100-SXM4-80GB", "A100-SXM4-40GB", "H100-80GB-HBM3"]


def raw(model: str) -> dict:
    return yaml.safe_load((PROFILE_DIR / f"{model}.yaml").read_text())


def test_required_models_ship():
    assert {"A100-SXM4-80GB", "A100-SXM4-40GB", "H100-80GB-HBM3", "L4", "T4"} <= set(available_models())
    assert not load_model("L4").mig_capable and not load_model("T4").mig_capable


@pytest.mark.parametrize("model", MIG_MODELS)
def test_mig_tables_are_physically_consistent(model):
    m = load_model(model)
    assert (m.memory_slices, m.compute_slices) == (8, 7)
    full = max(m.mig_profiles, key=lambda p: p.memory_slices)
    for p in m.mig_profiles:
        # max_count instances of the profile fit side by side, in memory and in engines
        layout = place(m, [p.name] * p.max_count)
        assert is_legal(m, layout) is None
        assert p.max_count * p.memory_mib <= m.memory_mib
        assert p.max_count * p.multiprocessors <= m.multiprocessors
        assert p.memory_mib <= full.memory_mib and p.multiprocessors <= full.multiprocessors
        for e in ("copy_engines", "decoders", "encoders", "jpeg_engines", "ofa_engines"):
            assert p.max_count * getattr(p.engines, e) <= getattr(m.engines, e), (p.name, e)
        # one more than max_count never fits
        with pytest.raises(PlacementError):
            place(m, [p.name] * (p.max_count + 1))


def test_a100_80gb_matches_the_mig_user_guide_table():
    m = load_model("A100-SXM4-80GB")
    table = {p.name: (p.gi_profile_id, p.memory_slices, p.compute_slices, p.max_count, p.placements) for p in m.mig_profiles}
    assert table["1g.10gb"] == (19, 1, 1, 7, (0, 1, 2, 3, 4, 5, 6))
    assert table["1g.20gb"] == (15, 2, 1, 4, (0, 2, 4, 6))
    assert table["2g.20gb"] == (14, 2, 2, 3, (0, 2, 4))
    assert table["3g.40gb"] == (9, 4, 3, 2, (0, 4))
    assert table["4g.40gb"] == (5, 4, 4, 1, (0,))
    assert table["7g.80gb"] == (0, 8, 7, 1, (0,))
    assert m.mig_profile("1g.10gb").multiprocessors == 14
    assert m.mig_profile("7g.80gb").memory_mib == 81152


def test_a100_40gb_halves_the_memory():
    m40, m80 = load_model("A100-SXM4-40GB"), load_model("A100-SXM4-80GB")
    names = [p.name for p in m40.mig_profiles]
    assert {"1g.5gb", "2g.10gb", "3g.20gb", "4g.20gb", "7g.40gb"} <= set(names)
    assert m40.mig_profile("2g.10gb").gi_profile_id == m80.mig_profile("2g.20gb").gi_profile_id


def test_mixed_workload_needs_backtracking_and_places_legally():
    m = load_model("A100-SXM4-80GB")
    layout = place(m, ["1g.10gb", "1g.10gb", "2g.20gb", "3g.40gb"])
    assert is_legal(m, layout) is None
    # 3g.40gb at 0 would leave slice 7 for a 1g.10gb, which has no placement there
    assert dict((p.name, s) for p, s in layout)["3g.40gb"] == 4


def test_placement_next_to_existing_and_refusals():
    m = load_model("A100-SXM4-80GB")
    existing = place(m, ["4g.40gb"])
    more = place(m, ["3g.40gb"], existing)
    assert more[0][1] == 4
    with pytest.raises(PlacementError, match="cannot place 2g.20gb"):
        place(m, ["2g.20gb"], existing + more)
    with pytest.raises(DataError, match="MIG profile '9g.99gb' does not exist"):
        place(m, ["9g.99gb"])
    assert "overlaps" in is_legal(m, [(m.mig_profile("2g.20gb"), 0), (m.mig_profile("1g.10gb"), 1)])
    assert "cannot start" in is_legal(m, [(m.mig_profile("3g.40gb"), 2)])
    assert "at most 1" in is_legal(m, [(m.mig_profile("1g.10gb+me"), 0), (m.mig_profile("1g.10gb+me"), 1)])


def _mutate(path, value):
    data = raw("A100-SXM4-80GB")
    target = data
    for key in path[:-1]:
        target = target[key]
    if value is KeyError:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return data


@pytest.mark.parametrize(
    "path, value, message",
    [
        (("memoryMiB",), "80GB", "memoryMiB: expected an integer"),
        (("productName",), KeyError, "missing required field(s) productName"),
        (("cudaComputeCapability",), 8.0, "cudaComputeCapability"),
        (("surprise",), 1, "unknown field(s) surprise"),
        (("mig", "profiles", 0, "memoryMiB"), -1, "mig.profiles[0].memoryMiB: must be >= 1"),
        (("mig", "profiles", 0, "name"), "big", "mig.profiles[0].name: expected a MIG profile name"),
        (("mig", "profiles", 3, "placements"), [0, 2, 7], "mig.profiles[3].placements[2]: must be <= 6"),
        (("mig", "profiles", 3, "maxCount"), 9, "mig.profiles[3].maxCount: must be <= 3"),
        (("mig", "profiles", 2, "name"), "1g.10gb", "duplicate profile name(s) 1g.10gb"),
        (("mig", "profiles", 1, "flavour"), "x", "mig.profiles[1]: unknown field(s) flavour"),
        (("migConfigs", "bad"), ["3g.40gb", "3g.40gb", "3g.40gb"], "migConfigs.bad: cannot place"),
        (("migConfigs", "typo"), ["1g.11gb"], "migConfigs.typo: MIG profile '1g.11gb' does not exist"),
    ],
)
def test_malformed_profiles_name_the_field(path, value, message):
    with pytest.raises(DataError) as exc:
        parse_model(_mutate(path, value), "A100-SXM4-80GB")
    assert message in str(exc.value)


def test_unknown_model_lists_the_known_ones(tmp_path):
    with pytest.raises(DataError, match="no such profile .*A100-SXM4-80GB"):
        load_model("B300")
    broken = tmp_path / "broken.yaml"
    broken.write_text("productName: [unclosed")
    with pytest.raises(DataError, match="not valid YAML"):
        load_model(str(broken))
    custom = tmp_path / "custom.yaml"
    data = copy.deepcopy(raw("L4"))
    data["productName"] = "Custom L4"
    custom.write_text(yaml.safe_dump(data))
    assert load_model(str(custom)).product_name == "Custom L4"

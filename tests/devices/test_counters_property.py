"""Dynamic-mode counters are exact: a set of devices fits the counters if and only if it can
physically exist on the GPU at once.

Realisable means: the whole GPU alone; or MIG devices at legal placements that share no memory
slice, within each profile's instance limit and the GPU's compute slices; or up to R replicas;
never replicas next to MIG devices. This is checked independently of the counters, from the GPU
model's MIG table.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from fractions import Fraction
from functools import lru_cache

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from driver.devices import Device, NodeInventory, discover, load_node_config
from driver.dra.quantity import parse_quantity
from driver.nvml.gpumodels import load_model
from driver.nvml.mock import MockNvml, parse_node

MODELS = ("A100-SXM4-80GB", "A100-SXM4-40GB", "H100-80GB-HBM3", "L4")
quantity = lru_cache(maxsize=None)(parse_quantity)
REPLICAS = (0, 1, 3)


@lru_cache(maxsize=None)
def gpu_inventory(model: str, replicas: int) -> NodeInventory:
    backend = MockNvml(parse_node({"profile": model, "gpuCount": 1}), "prop-node")
    return discover(backend, load_node_config({"sharing": {"mode": "dynamic", "replicas": replicas}}), "prop-node")


def fits(inv: NodeInventory, devices: list[Device]) -> bool:
    capacity = {cs.name: {k: quantity(v) for k, v in cs.counters.items()} for cs in inv.counter_sets}
    used: dict[tuple[str, str], Fraction] = defaultdict(Fraction)
    for d in devices:
        for c in d.consumes_counters:
            for name, q in c["counters"].items():
                used[(c["counterSet"], name)] += quantity(q["value"])
    return all(amount <= capacity[cs][name] for (cs, name), amount in used.items())


def realisable(model_name: str, replicas: int, devices: list[Device]) -> bool:
    kinds = Counter(d.kind for d in devices)
    if kinds["gpu"]:
        return len(devices) == 1
    if kinds["replica"] and kinds["mig"]:
        return False
    if kinds["replica"]:
        return kinds["replica"] <= max(replicas, 1)
    model = load_model(model_name)
    slices: set[int] = set()
    per_profile: Counter[str] = Counter()
    compute = 0
    for d in devices:
        profile = model.mig_profile(d.mig_profile)
        if d.placement_start not in profile.placements:
            return False
        covered = set(profile.slices_at(d.placement_start))
        if covered & slices:
            return False
        slices |= covered
        per_profile[profile.name] += 1
        compute += profile.compute_slices
        if per_profile[profile.name] > profile.max_count:
            return False
    return compute <= model.compute_slices


@st.composite
def device_sets(draw):
    model = draw(st.sampled_from(MODELS))
    replicas = draw(st.sampled_from(REPLICAS))
    inv = gpu_inventory(model, replicas)
    chosen = draw(st.lists(st.sampled_from(inv.devices), unique_by=lambda d: d.name, max_size=8))
    return model, replicas, inv, chosen


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(device_sets())
def test_fitting_the_counters_is_exactly_being_realisable(case):
    model, replicas, inv, chosen = case
    assert fits(inv, chosen) == realisable(model, replicas, chosen), [d.name for d in chosen]


@st.composite
def legal_layouts(draw):
    """A legal MIG layout built by adding random devices that keep it legal."""
    model = draw(st.sampled_from(MODELS[:3]))
    replicas = draw(st.sampled_from(REPLICAS))
    inv = gpu_inventory(model, replicas)
    migs = [d for d in inv.devices if d.kind == "mig"]
    order = draw(st.permutations(migs))
    layout: list[Device] = []
    for d in order:
        if realisable(model, replicas, [*layout, d]):
            layout.append(d)
    return model, replicas, inv, layout


@settings(max_examples=200, deadline=None)
@given(legal_layouts())
def test_every_legal_layout_fits_the_counters(case):
    """The converse: counters never forbid a layout NVIDIA allows (they are not merely safe)."""
    _, _, inv, layout = case
    assert fits(inv, layout), [d.name for d in layout]


def test_replicas_pack_up_to_r_and_exclude_everything_else():
    for model in MODELS:
        inv = gpu_inventory(model, 3)
        reps = [d for d in inv.devices if d.kind == "replica"]
        assert len(reps) == 3 and fits(inv, reps)
        whole = inv.device("gpu-0")
        assert fits(inv, [whole]) and not fits(inv, [whole, reps[0]])
        for mig in (d for d in inv.devices if d.kind == "mig"):
            assert fits(inv, [mig]) and not fits(inv, [mig, reps[0]]) and not fits(inv, [mig, whole])

"""Random nodes and node configs: device names stay unique DNS labels and every slice passes the
package validator, in both counter layouts."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from driver.devices import discover, load_node_config
from driver.devices.slices import build_slices
from driver.devices.apinames import is_dns_label
from driver.devices.validate import validate_pool
from driver.nvml.gpumodels import load_model
from driver.nvml.mock import MockNvml, parse_node

MODELS = ("A100-SXM4-80GB", "A100-SXM4-40GB", "H100-80GB-HBM3", "L4", "T4")


@st.composite
def nodes(draw):
    model = draw(st.sampled_from(MODELS))
    count = draw(st.integers(0, 8))
    configs = [c for c in (load_model(model).mig_configs or {})]
    gpus = []
    for index in range(count):
        if configs and draw(st.booleans()):
            gpus.append({"index": index, "migConfig": draw(st.sampled_from(configs))})
    sharing = st.one_of(
        st.sampled_from([{"mode": "whole"}, {"mode": "mig"}, {"mode": "fractional"}]),
        st.builds(lambda r: {"mode": "timeslicing", "replicas": r}, st.integers(2, 32)),
        st.builds(lambda r: {"mode": "dynamic", "replicas": r}, st.integers(0, 8)),
    )
    overrides = draw(st.dictionaries(st.integers(0, max(count - 1, 0)).map(str), sharing, max_size=4))
    node = draw(st.from_regex(r"[a-z]([a-z0-9-]{0,40}[a-z0-9])?(\.[a-z0-9]{1,20}){0,2}", fullmatch=True))
    return {"profile": model, "gpuCount": count, "gpus": gpus}, {"sharing": draw(sharing), "gpus": overrides}, node


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(nodes())
def test_random_nodes_publish_valid_pools(case):
    description, config, node = case
    inv = discover(MockNvml(parse_node(description), node), load_node_config(config), node)
    names = [d.name for d in inv.devices]
    assert len(names) == len(set(names)) and all(is_dns_label(n) for n in names)
    for layout in ("1.34", "1.35"):
        slices = build_slices(inv, node, "uid", None, 3, layout)
        assert validate_pool(slices, layout) == []
        assert sorted(d["name"] for s in slices for d in s["spec"].get("devices", [])) == sorted(names)

"""Packing strategies: config parsing, the FGD fragment measure, and each strategy's preference."""

from __future__ import annotations

import pytest

from driver.scheduler.cycle import ClusterState, Placement, schedule
from driver.scheduler.packing.scoring import (
    ANNOTATION, RUNAI_ANNOTATION, ConfigError, NodeClass, PackingConfig, Request, Scorer, Shape, Workload,
    parse_config, strategy_for,
)
from driver.allocator.inventory import build_inventories
from driver.sim import trace as tr


# ---- config ------------------------------------------------------------------------------------


def test_parse_config_full_and_defaults():
    cfg = parse_config({"strategy": "binpack", "weights": {"gpu": 2, "cpu": 0.5}, "thresholds": {"memory": 0.9},
                        "coverage": 0.9})
    assert cfg.strategy == "binpack"
    assert cfg.weights == {"gpu": 2.0, "cpu": 0.5, "memory": 0.25}
    assert cfg.thresholds == {"gpu": 1.0, "cpu": 1.0, "memory": 0.9}
    assert cfg.coverage == 0.9
    assert parse_config(None) == PackingConfig()


@pytest.mark.parametrize("raw, field", [
    ({"stratgy": "binpack"}, "packing.stratgy"),
    ({"strategy": "tetris"}, "packing.strategy"),
    ({"weights": {"gpu": "high"}}, "packing.weights.gpu"),
    ({"weights": {"disk": 1}}, "packing.weights.disk"),
    ({"weights": {"gpu": 0, "cpu": 0, "memory": 0}}, "packing.weights"),
    ({"weights": {"cpu": -1}}, "packing.weights.cpu"),
    ({"thresholds": {"gpu": 1.5}}, "packing.thresholds.gpu"),
    ({"thresholds": [0.5]}, "packing.thresholds"),
    ({"coverage": 0}, "packing.coverage"),
    ({"coverage": True}, "packing.coverage"),
    (["binpack"], "packing"),
])
def test_parse_config_errors_name_the_field(raw, field):
    with pytest.raises(ConfigError) as err:
        parse_config(raw)
    assert str(err.value).startswith(field + ":"), str(err.value)


def test_strategy_annotations():
    cfg = PackingConfig(strategy="spread")
    assert strategy_for({"metadata": {}}, cfg) == "spread"
    assert strategy_for({"metadata": {"annotations": {RUNAI_ANNOTATION: "binpack"}}}, cfg) == "binpack"
    both = {ANNOTATION: "fragmentation", RUNAI_ANNOTATION: "binpack"}
    assert strategy_for({"metadata": {"annotations": both}}, cfg) == "fragmentation"
    with pytest.raises(ConfigError, match=f"pod annotation {ANNOTATION}: unknown scheduling strategy 'tight'"):
        strategy_for({"metadata": {"annotations": {ANNOTATION: "tight"}}}, cfg)


# ---- learned workload and the fragment measure -------------------------------------------------


def test_workload_learns_popular_shapes_in_epochs():
    w = Workload(coverage=0.75)
    big, small, rare = Shape(1000, 0, (Request(1, 1000),)), Shape(500, 0, (Request(1, 250),)), Shape(1, 0, ())
    changes = [w.observe(big if i % 2 else small) for i in range(31)]
    assert not any(changes) and w.targets == ()  # nothing learned before the first epoch
    assert w.observe(rare)  # 32nd pod: first refresh
    shapes = [s for s, _ in w.targets]
    assert set(shapes) == {big, small}  # the rare shape is outside 75 % coverage
    assert abs(sum(p for _, p in w.targets) - 31 / 32) < 1e-9
    assert not w.observe(big)  # next refresh only when the count has doubled


def _node_class(gpus: int, cpu: int = 64000, memory: int = 2**40) -> NodeClass:
    return NodeClass(key=("test", gpus), cpu=cpu, memory=memory, totals=(1000,) * gpus,
                     admits=lambda key: (True,) * gpus)


@pytest.mark.parametrize("targets, fragment", [
    ([(Shape(0, 0, ()), 1.0), (Shape(0, 0, ()), -0.5)], "targets[1]: expected (Shape, popularity >= 0), got ("),
    ([("1x500", 1.0)], "targets[0]: expected (Shape, popularity >= 0), got ('1x500', 1.0)"),
])
def test_set_targets_names_the_bad_entry(targets, fragment):
    scorer = Scorer(PackingConfig(strategy="fgd"))
    epoch = scorer.epoch
    with pytest.raises(ConfigError) as err:
        scorer.set_targets(targets)
    assert fragment in str(err.value)
    assert scorer.epoch == epoch  # nothing changed


def test_fragment_matches_hand_computation():
    scorer = Scorer(PackingConfig(strategy="fgd"))
    a = Shape(1000, 0, (Request(1, 600),))
    b = Shape(1000, 0, (Request(1, 300),))
    cpu_heavy = Shape(60000, 0, (Request(1, 100),))
    scorer.set_targets([(a, 0.5), (b, 0.25), (cpu_heavy, 0.25)])
    node = _node_class(3)
    # free milli per GPU 1000, 540, 100 with 8 CPUs free:
    # a: fits (1000 >= 600); GPUs below 600 hold 540 + 100 = 640 -> 0.5 * 640
    # b: fits; GPUs below 300 hold 100                            -> 0.25 * 100
    # cpu_heavy cannot run (CPU): all free milli 1640 is a fragment -> 0.25 * 1640
    assert scorer.fragment(node, (8000, 2**30, (1000, 540, 100))) == pytest.approx(320 + 25 + 410)
    # a two-GPU shape that cannot find two free GPUs sees everything as fragment
    scorer.set_targets([(Shape(0, 0, (Request(2, 1000),)), 1.0)])
    assert scorer.fragment(node, (8000, 2**30, (1000, 540, 100))) == pytest.approx(1640)
    assert scorer.fragment(node, (8000, 2**30, (1000, 1000, 100))) == pytest.approx(100)


def test_fragment_respects_allowed_devices():
    scorer = Scorer(PackingConfig(strategy="fgd"))
    only_first = NodeClass(key="mask", cpu=1000, memory=1000, totals=(1000, 1000),
                           admits=lambda key: (True, False) if key == "first" else (True, True))
    scorer.set_targets([(Shape(0, 0, (Request(1, 800, "first"),)), 1.0)])
    # the only admitted GPU has 500 free: the shape cannot run, all 1500 free milli are fragment
    assert scorer.fragment(only_first, (0, 0, (500, 1000))) == pytest.approx(1500)
    assert scorer.fragment(only_first, (0, 0, (1000, 500))) == pytest.approx(500)


# ---- strategies on a small cluster, through schedule() -----------------------------------------


def _cluster(nodes: list[tr.TraceNode], config: PackingConfig) -> ClusterState:
    cls = tr.fractional_class()
    state = ClusterState({cls["metadata"]["name"]: cls}, config)
    slices = [s for s in map(tr.node_slice, nodes) if s]
    inventories = build_inventories(slices)
    for n in nodes:
        state.add_node(tr.node_dict(n), inventories.get(n.name))
    return state


def _place(state: ClusterState, name: str, milli: int, gpus: int = 1, cpu: int = 1000, strategy: str | None = None):
    pod, claims = tr.pod_objects(tr.TracePod(name, cpu, 1024, gpus, milli, ()), name)
    if strategy:
        pod["metadata"]["annotations"] = {ANNOTATION: strategy}
    result = schedule(pod, claims, state)
    assert isinstance(result, Placement), result
    state.commit(result)
    return result.node, [p.device.name for p in result.picks]


NODES = [tr.TraceNode("node-a", 32000, 131072, 2, "T4"), tr.TraceNode("node-b", 32000, 131072, 2, "T4")]


def test_binpack_fills_the_used_gpu():
    state = _cluster(NODES, PackingConfig(strategy="binpack"))
    first = _place(state, "p1", 300)
    assert _place(state, "p2", 300) == first
    assert _place(state, "p3", 400) == first  # 1000 - 600 = 400 still fits the same GPU


def test_spread_picks_the_emptiest():
    state = _cluster(NODES, PackingConfig(strategy="spread"))
    n1, d1 = _place(state, "p1", 300)
    n2, d2 = _place(state, "p2", 300)
    assert n1 != n2
    n3, d3 = _place(state, "p3", 300)
    assert d3 != d1 if n3 == n1 else d3 != d2  # a fresh GPU on a node that already has one in use


@pytest.mark.parametrize("strategy", ["fgd", "fragmentation"])
def test_fgd_avoids_leaving_an_unusable_fragment(strategy):
    """GPUs with 600 and 500 free; the workload is 500m pods. A 100m pod must go where it leaves
    500 (usable) rather than 400 (a fragment) — binpack's best fit does the opposite."""
    node = [tr.TraceNode("node-a", 64000, 262144, 2, "T4")]
    expected = {}
    for strat in (strategy, "binpack"):
        state = _cluster(node, PackingConfig(strategy=strat))
        state.scorer.set_targets([(Shape(1000, 1024 * 2**20, (Request(1, 500),)), 1.0)])
        _place(state, "a", 400, strategy="spread")
        _place(state, "b", 500, strategy="spread")
        frees = dict(zip((d.name for d in state.nodes["node-a"].inventory.devices), state.nodes["node-a"].free))
        assert sorted(frees.values()) == [500, 600]
        _, (device,) = _place(state, "c", 100)
        expected[strat] = frees[device]
    assert expected[strategy] == 600  # leaves 500: still fits the expected pods
    assert expected["binpack"] == 500  # best fit leaves 400 behind


def test_thresholds_keep_a_node_in_reserve():
    cfg = PackingConfig(strategy="binpack", thresholds={"gpu": 0.5, "cpu": 1.0, "memory": 1.0})
    state = _cluster(NODES, cfg)
    n1, _ = _place(state, "p1", 500)
    n2, _ = _place(state, "p2", 500)
    assert n1 == n2  # 50 % of the node's GPU: not above the threshold, binpack fills it
    n3, _ = _place(state, "p3", 500)
    assert n3 != n1  # would push node past 50 %: the other node first


def test_fragmentation_counts_small_gradients_as_none():
    """`fragmentation` treats a gradient inside ±NEUTRAL_BAND as zero and compares larger ones exactly."""
    from driver.scheduler.packing.scoring import NEUTRAL_BAND

    node = _node_class(1)
    pod = Shape(0, 0, (Request(1, 100),))
    for p in (0.2, 0.5):  # 100m on a GPU with 550 free leaves 450 < 500: a fragment of 450 * p
        scorer = Scorer(PackingConfig(strategy="fragmentation"))
        scorer.set_targets([(Shape(0, 0, (Request(1, 500),)), p)])
        delta = 450 * p
        cost = scorer.evaluate("fragmentation", node, (8000, 2**30, (550,)), pod).cost
        assert cost[1] == (0.0 if delta < NEUTRAL_BAND else pytest.approx(delta))
        assert scorer.evaluate("fgd", node, (8000, 2**30, (550,)), pod).cost[1] == pytest.approx(delta)


@pytest.mark.parametrize("strategy, same_gpu", [("fgd", False), ("fragmentation", True)])
def test_fragmentation_fills_a_hole_when_the_gradient_is_negligible(strategy, same_gpu):
    """A GPU with 550 free and an empty one; 100m costs a gradient of 90 on the first, 0 on the second.
    FGD takes the empty GPU; `fragmentation` calls both neutral and fills the partly used one."""
    nodes = [tr.TraceNode("node-a", 32000, 131072, 1, "T4"), tr.TraceNode("node-b", 32000, 131072, 1, "T4")]
    state = _cluster(nodes, PackingConfig(strategy=strategy))
    state.scorer.set_targets([(Shape(0, 0, (Request(1, 500),)), 0.2)])
    first, _ = _place(state, "a", 450, strategy="spread")
    second, _ = _place(state, "b", 100)
    assert (second == first) is same_gpu


def test_fragmentation_keeps_cpu_use_in_step_with_gpu_use():
    """Two nodes in the same GPU state, one with its CPUs nearly used up: the next pod goes to the
    node whose CPU use stays closest to its GPU use, not to the one with the fullest CPUs."""
    nodes = [tr.TraceNode("node-a", 32000, 131072, 1, "T4"), tr.TraceNode("node-b", 32000, 131072, 1, "T4")]
    state = _cluster(nodes, PackingConfig(strategy="fragmentation"))
    state.scorer.set_targets([(Shape(0, 0, (Request(1, 200),)), 1.0)])  # no gradient either way
    cpu_heavy, _ = _place(state, "a", 500, cpu=31000, strategy="spread")
    balanced, _ = _place(state, "b", 500, cpu=24600, strategy="spread")
    assert cpu_heavy != balanced
    # after a 300m / 1-core pod both GPUs are 80 % used; CPUs would be 100 % vs 80 % used
    assert _place(state, "c", 300, cpu=1000)[0] == balanced


def test_fgd_breaks_equal_gradients_by_best_fit():
    """Before the workload is learned every gradient is 0: FGD then fills the partly used GPU
    rather than taking the GPU of the node that has been empty longest."""
    nodes = [tr.TraceNode("node-a", 32000, 131072, 1, "T4"), tr.TraceNode("node-b", 32000, 131072, 1, "T4")]
    state = _cluster(nodes, PackingConfig(strategy="fgd"))
    first, _ = _place(state, "a", 500, strategy="spread")
    assert state.scorer.workload.targets == ()
    assert _place(state, "b", 300)[0] == first

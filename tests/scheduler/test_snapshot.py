"""The pod index: label lookups, terms by what they select, standing per-node counts — each
checked against a brute-force count over random pod arrivals, departures and relabels."""

from __future__ import annotations

import random

from driver.scheduler import labels as sel
from driver.scheduler.podinfo import pod_info
from driver.scheduler.snapshot import PodIndex

APPS = ("web", "db", "cache")
NAMESPACES = ("a", "b")


def _pod(i: int, rng: random.Random, terminating: bool = False) -> dict:
    labels = {"app": rng.choice(APPS)}
    if rng.random() < 0.5:
        labels["tier"] = rng.choice(("gold", "silver"))
    meta = {"name": f"p{i}", "uid": f"u{i}", "namespace": rng.choice(NAMESPACES), "labels": labels}
    if terminating:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    anti = {"labelSelector": {"matchLabels": {"app": labels["app"]}}, "topologyKey": "kubernetes.io/hostname"}
    spec = {"affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [anti]}}} \
        if rng.random() < 0.3 else {}
    return {"metadata": meta, "spec": spec}


SELECTORS = [
    (sel.parse({"matchLabels": {"app": "web"}}, "s"), frozenset(["a"]), None),
    (sel.parse({"matchExpressions": [{"key": "tier", "operator": "Exists"}]}, "s"), frozenset(["a", "b"]), None),
    (sel.parse({"matchExpressions": [{"key": "app", "operator": "NotIn", "values": ["db"]}]}, "s"), frozenset(), sel.EVERYTHING),
]


def _brute(index: PodIndex, selector, namespaces, ns_selector, live_only) -> dict[str, int]:
    out: dict[str, int] = {}
    for p in index.pods.values():
        in_ns = p.namespace in namespaces or (ns_selector is not None and ns_selector.matches({}))
        if not in_ns or not selector.matches(p.labels):
            continue
        if live_only and p.obj["metadata"].get("deletionTimestamp"):
            continue
        out[p.node] = out.get(p.node, 0) + 1
    return out


def test_standing_counts_and_term_index_agree_with_a_recount():
    rng = random.Random(7)
    index = PodIndex()
    for s, ns, nss in SELECTORS:  # watches opened on an empty index, kept current from here on
        for live in (False, True):
            index.node_counts(s, ns, nss, live)
    for step in range(600):
        i = rng.randrange(60)
        if rng.random() < 0.35 and f"u{i}" in index.pods:
            index.remove(f"u{i}")
        else:
            index.add(pod_info(_pod(i, rng, terminating=rng.random() < 0.2), node=f"n{rng.randrange(5)}"))
        if step % 25 == 0:
            for s, ns, nss in SELECTORS:
                for live in (False, True):
                    assert dict(index.node_counts(s, ns, nss, live)) == _brute(index, s, ns, nss, live)
            probe = pod_info(_pod(1000 + step, rng))
            got = {(o.uid, k) for o, k, _, _ in index.terms_selecting(probe)}
            want = {(o.uid, "requiredAntiAffinity") for o in index.pods.values()
                    for t in o.required_anti_affinity if t.selects(probe, {})}
            assert got == want
    # a watch opened late counts what is there already
    late = sel.parse({"matchLabels": {"app": "db"}}, "s")
    assert dict(index.node_counts(late, frozenset(NAMESPACES))) == _brute(index, late, frozenset(NAMESPACES), None, False)

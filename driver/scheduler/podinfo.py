"""A pod as the scheduler's constraints see it, parsed once when it enters the snapshot.

Inter-pod affinity, topology spread, host ports and preemption all look at the pods already on
nodes, thousands of times per second; parsing their affinity terms and requests once per pod (not
once per look) is what keeps those constraints cheap.

Affinity terms follow kube-scheduler (`framework.AffinityTerm`): a term selects pods in the
namespaces it lists plus those its namespaceSelector matches; with neither, the namespace of the
pod that carries the term; an empty namespaceSelector `{}` means every namespace. matchLabelKeys /
mismatchLabelKeys add `key in (value)` / `key notin (value)` of the carrying pod's own labels to
the labelSelector (the API server does this at admission since 1.31; doing it again is harmless,
and it covers pods admitted by older servers).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Mapping

from driver.scheduler import labels as sel
from driver.scheduler.plugins import noderesources


@dataclass(frozen=True, slots=True)
class AffinityTerm:
    """One PodAffinityTerm, resolved against the pod that carries it."""

    selector: sel.Selector
    topology_key: str
    namespaces: frozenset[str]
    namespace_selector: sel.Selector | None  # None: no selector (only `namespaces` count)

    def selects_namespace(self, namespace: str, namespace_labels: Mapping[str, Mapping[str, str]]) -> bool:
        if namespace in self.namespaces:
            return True
        if self.namespace_selector is None:
            return False
        return self.namespace_selector.matches(namespace_labels.get(namespace, {}))

    def selects(self, pod: "PodInfo", namespace_labels: Mapping[str, Mapping[str, str]]) -> bool:
        """Does this term select `pod` (namespace and labels)?"""
        return self.selects_namespace(pod.namespace, namespace_labels) and self.selector.matches(pod.labels)


@dataclass(frozen=True, slots=True)
class WeightedTerm:
    weight: int
    term: AffinityTerm


@dataclass(slots=True)
class PodInfo:
    uid: str
    namespace: str
    name: str
    labels: Mapping[str, str]
    node: str
    priority: int
    requests: noderesources.Resources
    obj: Mapping[str, Any]
    required_affinity: tuple[AffinityTerm, ...] = ()
    required_anti_affinity: tuple[AffinityTerm, ...] = ()
    preferred_affinity: tuple[WeightedTerm, ...] = ()
    preferred_anti_affinity: tuple[WeightedTerm, ...] = ()
    host_ports: tuple[tuple[str, str, int], ...] = ()  # (hostIP, protocol, hostPort)
    extra: dict[str, Any] = field(default_factory=dict)  # per-plugin cache

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def has_affinity_terms(self) -> bool:
        return bool(self.required_affinity or self.required_anti_affinity or self.preferred_affinity
                    or self.preferred_anti_affinity)


_INTERNED: dict[tuple, AffinityTerm] = {}  # equal terms of replicas share one object (see snapshot)


def _term(raw: Any, pod_ns: str, pod_labels: Mapping[str, str], where: str) -> AffinityTerm:
    if isinstance(raw, Mapping):
        keys = tuple(raw.get("matchLabelKeys") or ()) + tuple(raw.get("mismatchLabelKeys") or ())
        try:
            ident = (pod_ns, json.dumps(raw, sort_keys=True), tuple(pod_labels.get(k) for k in keys))
        except (TypeError, ValueError):
            ident = None
        if ident is not None:
            got = _INTERNED.get(ident)
            if got is None:
                if len(_INTERNED) > 20000:
                    _INTERNED.clear()
                got = _INTERNED[ident] = _parse_term(raw, pod_ns, pod_labels, where)
            return got
    return _parse_term(raw, pod_ns, pod_labels, where)


def _parse_term(raw: Any, pod_ns: str, pod_labels: Mapping[str, str], where: str) -> AffinityTerm:
    if not isinstance(raw, Mapping):
        raise sel.SelectorError(f"{where}: expected a pod affinity term object")
    topology_key = raw.get("topologyKey") or ""
    if not topology_key:
        raise sel.SelectorError(f"{where}.topologyKey: required (a node label key such as kubernetes.io/hostname)")
    selector = sel.parse(raw.get("labelSelector"), f"{where}.labelSelector")
    extra: list[sel.Requirement] = []
    for key in raw.get("matchLabelKeys") or []:
        if key in pod_labels:
            extra.append(sel.Requirement(key, "In", frozenset([pod_labels[key]])))
    for key in raw.get("mismatchLabelKeys") or []:
        if key in pod_labels:
            extra.append(sel.Requirement(key, "NotIn", frozenset([pod_labels[key]])))
    selector = selector.with_requirements(tuple(extra))
    namespaces = frozenset(str(n) for n in raw.get("namespaces") or [])
    ns_sel = raw.get("namespaceSelector")
    namespace_selector = sel.parse(ns_sel, f"{where}.namespaceSelector") if ns_sel is not None else None
    if not namespaces and namespace_selector is None:
        namespaces = frozenset([pod_ns])
    return AffinityTerm(selector, topology_key, namespaces, namespace_selector)


def _terms(block: Mapping[str, Any], pod_ns: str, pod_labels: Mapping[str, str], where: str
           ) -> tuple[tuple[AffinityTerm, ...], tuple[WeightedTerm, ...]]:
    req_key = "requiredDuringSchedulingIgnoredDuringExecution"
    pref_key = "preferredDuringSchedulingIgnoredDuringExecution"
    required = tuple(_term(t, pod_ns, pod_labels, f"{where}.{req_key}[{i}]")
                     for i, t in enumerate(block.get(req_key) or []))
    preferred = []
    for i, w in enumerate(block.get(pref_key) or []):
        at = f"{where}.{pref_key}[{i}]"
        if not isinstance(w, Mapping):
            raise sel.SelectorError(f"{at}: expected a weighted pod affinity term")
        weight = w.get("weight")
        if not isinstance(weight, int) or isinstance(weight, bool) or not 1 <= weight <= 100:
            raise sel.SelectorError(f"{at}.weight: expected an integer in 1..100, got {weight!r}")
        preferred.append(WeightedTerm(weight, _term(w.get("podAffinityTerm"), pod_ns, pod_labels, f"{at}.podAffinityTerm")))
    return required, tuple(preferred)


_NODEPORTS: Any = None


def _nodeports() -> Any:
    """plugins.nodeports, imported on first use (it imports the framework, which imports this module)."""
    global _NODEPORTS
    if _NODEPORTS is None:
        from driver.scheduler.plugins import nodeports
        _NODEPORTS = nodeports
    return _NODEPORTS


def pod_info(pod: Mapping[str, Any], node: str = "") -> PodInfo:
    """Parse a Pod dict. Raises `labels.SelectorError` / `noderesources.PodSpecError` naming the field."""
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    ns = str(meta.get("namespace") or "default")
    labels = dict(meta.get("labels") or {})
    affinity = spec.get("affinity") or {}
    req_a, pref_a = _terms(affinity.get("podAffinity") or {}, ns, labels, "spec.affinity.podAffinity")
    req_aa, pref_aa = _terms(affinity.get("podAntiAffinity") or {}, ns, labels, "spec.affinity.podAntiAffinity")
    priority = spec.get("priority")
    return PodInfo(
        uid=str(meta.get("uid") or f"{ns}/{meta.get('name', '')}"),
        namespace=ns,
        name=str(meta.get("name") or ""),
        labels=labels,
        node=node or str(spec.get("nodeName") or ""),
        priority=int(priority) if isinstance(priority, int) else 0,
        requests=noderesources.pod_requests(pod),
        obj=pod,
        required_affinity=req_a,
        required_anti_affinity=req_aa,
        preferred_affinity=pref_a,
        preferred_anti_affinity=pref_aa,
        host_ports=tuple(_nodeports().host_ports(pod)),
    )

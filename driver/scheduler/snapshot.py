"""The pods on nodes, indexed for the inter-pod constraints: who is where, by label, by node.

kube-scheduler answers "how many pods matching this selector run in each topology domain?" by
walking every pod of every node in PreFilter. We keep indexes instead, updated as pods are
assumed, bound and leave: pods by (namespace, label key, value) and by (namespace, label key),
pods by node, existing pods' affinity terms by what they select (their anti-affinity applies
symmetrically to every incoming pod, their preferences score it: `terms_selecting`), and standing
per-node counts for the selectors constraints keep asking about (`node_counts`). A selector is
answered from its most selective positive requirement (`labels.Selector.hint`), then checked in
full; only a selector with no positive requirement walks the namespace.

Nodes by topology label (`TopologyIndex`) give the domains of a key without walking the nodes.
"""

from __future__ import annotations

from typing import Iterable, Iterator, Mapping

from driver.scheduler import labels as sel
from driver.scheduler.podinfo import AffinityTerm, PodInfo


class PodIndex:
    """Pods placed on nodes (bound or assumed), with the indexes above. Not thread-safe: the
    caller holds the state's lock, as for every other part of the snapshot."""

    def __init__(self) -> None:
        self.pods: dict[str, PodInfo] = {}
        self.by_node: dict[str, dict[str, PodInfo]] = {}
        self.by_namespace: dict[str, set[str]] = {}
        self._by_label: dict[tuple[str, str, str], set[str]] = {}
        self._by_key: dict[tuple[str, str], set[str]] = {}
        self.with_terms: dict[str, PodInfo] = {}
        self.namespace_labels: dict[str, dict[str, str]] = {}
        # Existing pods' affinity terms by what they select (their selector's hint): the terms that
        # may select an incoming pod are found from its labels, not by walking every such pod.
        self._terms_by_label: dict[tuple[str, str], set[tuple[str, str, int]]] = {}
        self._terms_by_key: dict[str, set[tuple[str, str, int]]] = {}
        self._terms_unhinted: set[tuple[str, str, int]] = set()
        # Standing counts for the selectors constraints ask about again and again (a Deployment's
        # anti-affinity or spread selector): matching pods per node, kept current as pods come and
        # go, so a pod's prefilter reads topology-pair counts instead of recounting its peers.
        self._watches: dict[tuple, _Watch] = {}

    def __len__(self) -> int:
        return len(self.pods)

    def get(self, uid: str) -> PodInfo | None:
        return self.pods.get(uid)

    def on_node(self, node: str) -> Mapping[str, PodInfo]:
        return self.by_node.get(node, {})

    def add(self, pod: PodInfo) -> None:
        """Add (or replace) a pod on `pod.node`."""
        if pod.uid in self.pods:
            self.remove(pod.uid)
        if not pod.node:
            raise ValueError(f"pod {pod.key}: a pod in the snapshot needs a node")
        self.pods[pod.uid] = pod
        self.by_node.setdefault(pod.node, {})[pod.uid] = pod
        self.by_namespace.setdefault(pod.namespace, set()).add(pod.uid)
        for k, v in pod.labels.items():
            self._by_label.setdefault((pod.namespace, k, v), set()).add(pod.uid)
            self._by_key.setdefault((pod.namespace, k), set()).add(pod.uid)
        if pod.has_affinity_terms:
            self.with_terms[pod.uid] = pod
            for ref, term in _term_refs(pod):
                self._index_term(ref, term, add=True)
        for w in self._watches.values():
            w.add(pod, self.namespace_labels)

    def remove(self, uid: str) -> PodInfo | None:
        pod = self.pods.pop(uid, None)
        if pod is None:
            return None
        on = self.by_node.get(pod.node)
        if on is not None:
            on.pop(uid, None)
            if not on:
                del self.by_node[pod.node]
        _discard(self.by_namespace, pod.namespace, uid)
        for k, v in pod.labels.items():
            _discard(self._by_label, (pod.namespace, k, v), uid)
            _discard(self._by_key, (pod.namespace, k), uid)
        if self.with_terms.pop(uid, None) is not None:
            for ref, term in _term_refs(pod):
                self._index_term(ref, term, add=False)
        for w in self._watches.values():
            w.remove(pod)
        return pod

    def node_counts(self, selector: sel.Selector, namespaces: frozenset[str],
                    namespace_selector: sel.Selector | None = None, live_only: bool = False) -> Mapping[str, int]:
        """Pods per node that `select(...)` would return (`live_only`: not terminating), from a
        standing count: the first call counts, later ones read it. Read-only for the caller."""
        key = (selector, namespaces, namespace_selector, live_only)
        w = self._watches.get(key)
        if w is None:
            if len(self._watches) >= MAX_WATCHES:
                self._watches.clear()
            w = self._watches[key] = _Watch(selector, namespaces, namespace_selector, live_only)
            for pod in self.select(selector, namespaces, namespace_selector):
                w.add(pod, None)
        return w.per_node


    def _index_term(self, ref: tuple[str, str, int], term: AffinityTerm, add: bool) -> None:
        hint = term.selector.hint()
        if hint is None:
            (self._terms_unhinted.add if add else self._terms_unhinted.discard)(ref)
        elif hint.operator == "Exists":
            (_add if add else _discard)(self._terms_by_key, hint.key, ref)
        else:
            for v in hint.values:
                (_add if add else _discard)(self._terms_by_label, (hint.key, v), ref)

    def terms_selecting(self, pod: PodInfo, kinds: frozenset[str] | None = None
                        ) -> Iterator[tuple[PodInfo, str, int, AffinityTerm]]:
        """Existing pods' affinity terms that select `pod`: (owner, kind, weight, term), kind one of
        "requiredAffinity", "requiredAntiAffinity", "preferredAffinity", "preferredAntiAffinity"
        (weight 0 for required terms), only those of `kinds` if given. The owner itself is left out.
        Replicas share their parsed terms (podinfo interns them), so each distinct term is matched
        against the pod once, however many pods carry it."""
        refs: set[tuple[str, str, int]] = set(self._terms_unhinted)
        for k, v in pod.labels.items():
            refs.update(self._terms_by_label.get((k, v), ()))
            refs.update(self._terms_by_key.get(k, ()))
        verdict: dict[int, bool] = {}
        ns_labels = self.namespace_labels
        for uid, kind, i in refs:  # (order does not matter: callers sum per topology pair)
            if kinds is not None and kind not in kinds:
                continue
            owner = self.pods.get(uid)
            if owner is None or uid == pod.uid:
                continue
            weight, term = _term_at(owner, kind, i)
            hit = verdict.get(id(term))
            if hit is None:
                hit = verdict[id(term)] = term.selects(pod, ns_labels)
            if hit:
                yield owner, kind, weight, term


    def set_namespace(self, name: str, labels: Mapping[str, str] | None) -> None:
        """Record a Namespace's labels (None: it is gone) for namespaceSelectors."""
        for key in [k for k, w in self._watches.items() if w.namespace_selector is not None]:
            del self._watches[key]  # which namespaces they select may change
        if labels is None:
            self.namespace_labels.pop(name, None)
        else:
            self.namespace_labels[name] = dict(labels)

    def _namespaces(self, term_namespaces: frozenset[str], ns_selector: sel.Selector | None) -> Iterable[str]:
        if ns_selector is None:
            return term_namespaces
        if ns_selector.everything:
            return self.by_namespace.keys()
        known = set(self.by_namespace)
        return {n for n in known if n in term_namespaces
                or ns_selector.matches(self.namespace_labels.get(n, {}))}

    def select(self, selector: sel.Selector, namespaces: frozenset[str],
               namespace_selector: sel.Selector | None = None) -> Iterator[PodInfo]:
        """Pods in the given namespaces (plus those namespace_selector matches) that selector matches."""
        if selector.nothing:
            return
        hint = selector.hint()
        for ns in list(self._namespaces(namespaces, namespace_selector)):
            if hint is None:
                uids: Iterable[str] = self.by_namespace.get(ns, ())
            elif hint.operator == "Exists":
                uids = self._by_key.get((ns, hint.key), ())
            else:
                uids = [u for v in hint.values for u in self._by_label.get((ns, hint.key, v), ())]
            for uid in uids:
                pod = self.pods[uid]
                if selector.matches(pod.labels):
                    yield pod

    def select_term(self, term: AffinityTerm) -> Iterator[PodInfo]:
        """Pods an affinity term selects."""
        return self.select(term.selector, term.namespaces, term.namespace_selector)


MAX_WATCHES = 256


class _Watch:
    """Matching pods per node for one (selector, namespaces) question; see PodIndex.node_counts."""

    __slots__ = ("selector", "namespaces", "namespace_selector", "live_only", "per_node", "members")

    def __init__(self, selector: sel.Selector, namespaces: frozenset[str], namespace_selector: sel.Selector | None,
                 live_only: bool) -> None:
        self.selector = selector
        self.namespaces = namespaces
        self.namespace_selector = namespace_selector
        self.live_only = live_only
        self.per_node: dict[str, int] = {}
        self.members: dict[str, str] = {}  # uid -> node counted

    def add(self, pod: PodInfo, namespace_labels: Mapping[str, Mapping[str, str]] | None) -> None:
        if namespace_labels is not None:  # (None: the pod comes from select(), already checked)
            if pod.namespace not in self.namespaces and (
                    self.namespace_selector is None
                    or not self.namespace_selector.matches(namespace_labels.get(pod.namespace, {}))):
                return
            if not self.selector.matches(pod.labels):
                return
        if self.live_only and (pod.obj.get("metadata") or {}).get("deletionTimestamp"):
            return
        self.members[pod.uid] = pod.node
        self.per_node[pod.node] = self.per_node.get(pod.node, 0) + 1

    def remove(self, pod: PodInfo) -> None:
        node = self.members.pop(pod.uid, None)
        if node is not None:
            left = self.per_node[node] - 1
            if left:
                self.per_node[node] = left
            else:
                del self.per_node[node]


_KINDS = ("requiredAffinity", "requiredAntiAffinity", "preferredAffinity", "preferredAntiAffinity")


def _term_refs(pod: PodInfo) -> Iterator[tuple[tuple[str, str, int], AffinityTerm]]:
    for i, t in enumerate(pod.required_affinity):
        yield (pod.uid, _KINDS[0], i), t
    for i, t in enumerate(pod.required_anti_affinity):
        yield (pod.uid, _KINDS[1], i), t
    for i, w in enumerate(pod.preferred_affinity):
        yield (pod.uid, _KINDS[2], i), w.term
    for i, w in enumerate(pod.preferred_anti_affinity):
        yield (pod.uid, _KINDS[3], i), w.term


def _term_at(pod: PodInfo, kind: str, i: int) -> tuple[int, AffinityTerm]:
    if kind == _KINDS[0]:
        return 0, pod.required_affinity[i]
    if kind == _KINDS[1]:
        return 0, pod.required_anti_affinity[i]
    w = (pod.preferred_affinity if kind == _KINDS[2] else pod.preferred_anti_affinity)[i]
    return w.weight, w.term


def _add(index: dict, key: object, ref: object) -> None:
    index.setdefault(key, set()).add(ref)


def _discard(index: dict, key: object, uid: object) -> None:
    s = index.get(key)
    if s is not None:
        s.discard(uid)
        if not s:
            del index[key]


class TopologyIndex:
    """Nodes by label: key -> value -> node names, kept with the nodes of the state."""

    def __init__(self) -> None:
        self.by_key: dict[str, dict[str, set[str]]] = {}
        self._labels: dict[str, dict[str, str]] = {}

    def set_node(self, name: str, labels: Mapping[str, str] | None) -> None:
        old = self._labels.pop(name, None)
        for k, v in (old or {}).items():
            values = self.by_key.get(k)
            if values is not None:
                nodes = values.get(v)
                if nodes is not None:
                    nodes.discard(name)
                    if not nodes:
                        del values[v]
                if not values:
                    del self.by_key[k]
        if labels is not None:
            self._labels[name] = dict(labels)
            for k, v in labels.items():
                self.by_key.setdefault(k, {}).setdefault(v, set()).add(name)

    def value(self, node: str, key: str) -> str | None:
        return self._labels.get(node, {}).get(key)

    def domains(self, key: str) -> Mapping[str, set[str]]:
        return self.by_key.get(key, {})

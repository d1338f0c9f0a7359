"""`gpu-dra schedule`: where the controller would put a pod, or why not — offline, from YAML.

Why it builds the snapshot through the controller's own `ClusterView` (fed the objects as its
informers would) and mirrors `_schedule_one` step by step: a dry run that reimplemented any of it
would answer a different question from the one the running controller answers. Only what happens
before a pod reaches the controller is added here — Priority admission (a hand-written pod has a
priorityClassName but no spec.priority) and the resourceclaim controller's claims from templates —
so that a pod.yaml written by hand is seen as the cluster would see it. Nothing is written anywhere.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import datetime as dt
import json
import logging
import sys
from dataclasses import dataclass, field, replace
from typing import Any, Iterator, Mapping

import yaml

from driver.cliinput import FlagError, InputFileError, load_yaml, load_objects, rfc3339
from driver.controller.podclaims import ClaimPlan, plan_claims

RESOURCE_API = ("resource.k8s.io/v1", "resource.k8s.io/v1beta2")
KINDS: dict[str, tuple[str, ...]] = {  # kind -> accepted apiVersions
    "Node": ("v1",), "Pod": ("v1",), "Namespace": ("v1",),
    "ResourceSlice": RESOURCE_API, "DeviceClass": RESOURCE_API, "ResourceClaim": RESOURCE_API,
    "ResourceClaimTemplate": RESOURCE_API,
    "PriorityClass": ("scheduling.k8s.io/v1",), "PodDisruptionBudget": ("policy/v1",),
    "PersistentVolumeClaim": ("v1",), "PersistentVolume": ("v1",), "StorageClass": ("storage.k8s.io/v1",),
}
NAMESPACED = {"Pod", "ResourceClaim", "ResourceClaimTemplate", "PodDisruptionBudget", "PersistentVolumeClaim"}
VOLUMES = {"PersistentVolumeClaim": "pvc", "PersistentVolume": "pv", "StorageClass": "storageclass"}
POD_CLAIM_ANNOTATION = "resource.kubernetes.io/pod-claim-name"

USAGE = """Where the gpu-dra controller would place a pod (node and devices), or why it cannot.

    kubectl get nodes,pods,resourceslices,deviceclasses,resourceclaims,priorityclasses -A -o yaml > cluster.yaml
    gpu-dra schedule -f cluster.yaml -f pod.yaml                 # node + devices, or the reasons
    gpu-dra schedule -f cluster.yaml -f pod.yaml -o json         # machine-readable

The pods dry-run are the pending Pods of the last -f file (or those named with --pod), in file
order, each seeing the decisions before it. A pod.yaml may hold the ResourceClaims and
ResourceClaimTemplates its pods use. Exit status: 0 every pod would be placed (at once or after
preempting), 1 a pod would stay Pending, 2 bad input (nothing is printed but the error).
"""


def register(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    p = sub.add_parser("schedule", help="dry run: the node and devices the controller would choose for a pod (offline)",
                       description=USAGE, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-f", "--filename", action="append", required=True, metavar="FILE",
                   help="YAML/JSON: a List, multi-document YAML or one object ('-' = stdin); repeatable")
    p.add_argument("--pod", action="append", metavar="NAMESPACE/NAME",
                   help="pod(s) to dry-run (default: the pending Pods of the last -f file)")
    p.add_argument("--config", help="packing config YAML, as `gpu-dra controller --config`")
    p.add_argument("--strategy", help="override the packing strategy (binpack, spread, fragmentation, fgd)")
    p.add_argument("--scheduler-name", default="gpu-dra-scheduler", help="the controller's spec.schedulerName")
    p.add_argument("--no-preemption", action="store_true", help="do not look for preemption victims")
    p.add_argument("--now", help="allocationTimestamp to write into allocations (RFC 3339; default: now)")
    p.add_argument("-o", "--output", choices=["text", "yaml", "json"], default="text")
    p.set_defaults(func=run)


class InputError(ValueError):
    """Input that cannot be used; the message names the file and object."""


# ---- loading ------------------------------------------------------------------------------


@dataclass
class Inputs:
    """Objects by kind and "namespace/name" (later files win, as `kubectl apply` would), where each
    came from, and the pods of the last file (the default pods to dry-run)."""

    objects: dict[str, dict[str, dict]] = field(default_factory=lambda: {k: {} for k in KINDS})
    origin: dict[tuple[str, str], str] = field(default_factory=dict)
    last: list[str] = field(default_factory=list)

    def where(self, kind: str, key: str) -> str:
        return f"{self.origin.get((kind, key), '?')}: {kind} {key}"


def _documents(path: str) -> Iterator[tuple[str, Any, str]]:
    """(kind, object, apiVersion) for each object of a file; the items of Lists unpacked (a typed
    list such as PodList may leave kind and apiVersion off its items)."""
    try:
        docs = load_objects(path)
    except InputFileError as exc:
        raise InputError(str(exc)) from None
    for i, doc in docs:
        kind = str(doc.get("kind") or "")
        if kind.endswith("List") and isinstance(doc.get("items"), list):
            item_kind = kind[:-4] if kind != "List" else ""
            for j, item in enumerate(doc["items"]):
                if not isinstance(item, dict):
                    raise InputError(f"{path}: document {i} items[{j}]: expected a Kubernetes object")
                yield str(item.get("kind") or item_kind), item, str(item.get("apiVersion") or doc.get("apiVersion") or "")
        else:
            yield kind, doc, str(doc.get("apiVersion") or "")


def load(paths: list[str]) -> Inputs:
    """Read every file; an unknown kind, an unsupported apiVersion or a nameless object is an error."""
    out = Inputs()
    for n, path in enumerate(paths):
        for kind, obj, api in _documents(path):
            meta = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else {}
            name = meta.get("name")
            label = f"{kind or 'object'} {name or '?'}"
            if not kind:
                raise InputError(f"{path}: {label}: no kind")
            if kind not in KINDS:
                raise InputError(f"{path}: {label}: unknown kind {kind!r}; expected one of {', '.join(KINDS)}")
            if api not in KINDS[kind]:
                raise InputError(f"{path}: {label}: apiVersion {api or '(none)'} not supported; "
                                 f"expected {' or '.join(KINDS[kind])}")
            if not isinstance(name, str) or not name:
                raise InputError(f"{path}: {kind} without metadata.name")
            obj = {**obj, "kind": kind, "apiVersion": api, "metadata": dict(meta)}
            if kind in NAMESPACED:
                obj["metadata"].setdefault("namespace", "default")
            key = f"{obj['metadata']['namespace']}/{name}" if kind in NAMESPACED else name
            # What the API server would have given it: informers key accounting by UID.
            obj["metadata"].setdefault("uid", f"dry-run-{kind.lower()}-{key.replace('/', '-')}")
            out.objects[kind].pop(key, None)  # re-added at the end: a later definition moves too
            out.objects[kind][key] = obj
            out.origin[(kind, key)] = path
            if kind == "Pod" and n == len(paths) - 1:
                out.last.append(key)
    return out


# ---- what the API server does before the controller sees a pod --------------------------------


def admit_priority(pod: dict, classes: Mapping[str, Mapping[str, Any]]) -> dict:
    """Priority admission for a pod created without spec.priority, as the API server does it (the
    local cluster's admission: the named PriorityClass, else the globalDefault one, else 0, with
    the system classes always there). Raises ValueError with the API server's words."""
    from driver.local import scheduling as admission

    spec = pod.get("spec") or {}
    if isinstance(spec.get("priority"), int):
        return pod  # admitted already (what `kubectl get` returns)
    known = {pc["metadata"]["name"]: pc for pc in admission.system_class_bodies()}
    known.update({name: dict(pc) for name, pc in classes.items()})
    try:
        resolved = admission.resolve(spec, known)
    except admission.PriorityRefused as exc:
        missing = bool(spec.get("priorityClassName")) and spec["priorityClassName"] not in known
        hint = " (add priorityclasses to the kubectl get)" if missing else ""
        raise ValueError(f"{exc}{hint}") from None
    admitted = {**pod, "spec": dict(spec)}
    admission.apply(admitted["spec"], resolved)
    return admitted


def claims_from_templates(pod: dict, templates: Mapping[str, Mapping[str, Any]]) -> tuple[dict, list[dict]]:
    """The resourceclaim controller's work for a pod not created yet: a claim owned by the pod for
    each template it names and has no claim for, recorded in status.resourceClaimStatuses."""
    meta, spec = pod["metadata"], pod.get("spec") or {}
    ns, name = meta["namespace"], meta["name"]
    statuses = list((pod.get("status") or {}).get("resourceClaimStatuses") or [])
    done = {s.get("name") for s in statuses}
    made = []
    for pc in spec.get("resourceClaims") or []:
        template_name = pc.get("resourceClaimTemplateName")
        if not template_name or pc.get("name") in done:
            continue
        template = templates.get(f"{ns}/{template_name}")
        if template is None:
            raise ValueError(f"spec.resourceClaims[{pc.get('name')}]: resourceclaimtemplate {ns}/{template_name} "
                             "not found in the input")
        tmeta = (template.get("spec") or {}).get("metadata") or {}
        claim_name = f"{name}-{pc['name']}-"[:58] + "dryrun"
        made.append({
            "apiVersion": "resource.k8s.io/v1", "kind": "ResourceClaim",
            "metadata": {"name": claim_name, "namespace": ns, "uid": f"dry-run-resourceclaim-{ns}-{claim_name}",
                         "labels": dict(tmeta.get("labels") or {}),
                         "annotations": {**(tmeta.get("annotations") or {}), POD_CLAIM_ANNOTATION: pc["name"]},
                         "ownerReferences": [{"apiVersion": "v1", "kind": "Pod", "name": name, "uid": meta["uid"],
                                              "controller": True, "blockOwnerDeletion": True}]},
            "spec": copy.deepcopy((template.get("spec") or {}).get("spec") or {}),
        })
        statuses.append({"name": pc["name"], "resourceClaimName": claim_name})
    if not made:
        return pod, []
    return {**pod, "status": {**(pod.get("status") or {}), "resourceClaimStatuses": statuses}}, made


# ---- the shared step of `_schedule_one` -----------------------------------------------------


# ---- the dry run ----------------------------------------------------------------------------


@dataclass
class Decision:
    """One pod's verdict, in the output's shape (README: "Reading `gpu-dra schedule` output").
    `outcome`: Scheduled, Preempting (fits once the victims are evicted) or Unschedulable."""

    pod: str
    outcome: str
    node: str | None = None
    strategy: str | None = None
    claims: list[dict[str, Any]] = field(default_factory=list)  # podClaimName, name, alreadyAllocated, allocation
    message: str | None = None  # kube-scheduler's "0/N nodes are available: ..." (not Scheduled)
    nodes: list[dict[str, Any]] = field(default_factory=list)  # first refusal per node: node, plugin, reason, unresolvable
    preemption: dict[str, Any] | None = None  # node, victims, pdbViolations | node None + reason
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in vars(self).items() if v is not None or k == "node"}
        if self.message is None:
            del out["nodes"]
        return out


def _claim(names: Mapping[str, str], name: str, allocation: dict, before: bool) -> dict[str, Any]:
    return {"podClaimName": names.get(name, ""), "name": name, "alreadyAllocated": before, "allocation": allocation}


def _pod_claim_names(pod: Mapping[str, Any]) -> dict[str, str]:
    """ResourceClaim name -> the pod's name for it."""
    status = (pod.get("status") or {}).get("resourceClaimStatuses") or []
    statuses = {s.get("name"): s.get("resourceClaimName") for s in status}
    out = {}
    for pc in (pod.get("spec") or {}).get("resourceClaims") or []:
        name = pc.get("resourceClaimName") or statuses.get(pc.get("name"))
        if name:
            out[name] = pc.get("name", "")
    return out


class DryRun:
    """A `ClusterView` fed the input, and `decide` for one pod at a time (decisions are assumed,
    as the controller assumes them, so a later pod sees the earlier ones)."""

    def __init__(self, inputs: Inputs, packing: Any, now: str, preemption: bool = True) -> None:
        from driver.controller.view import ClusterView

        self.inputs, self.now, self.preemption = inputs, now, preemption
        self.view = ClusterView(packing)
        self.packing = packing
        objs = inputs.objects
        self.claims = dict(objs["ResourceClaim"])  # "ns/name" -> claim (what the claim informer holds)
        self.pods: dict[str, dict] = {}
        for key, pod in objs["Pod"].items():
            try:
                self.pods[key] = admit_priority(pod, objs["PriorityClass"])
            except ValueError as exc:
                raise InputError(f"{inputs.where('Pod', key)}: spec.priorityClassName: {exc}") from None
        self.pdbs = list(objs["PodDisruptionBudget"].values())
        v = self.view
        feeds: list[tuple[Any, Any]] = [(objs["DeviceClass"], v.on_class), (objs["Namespace"], v.on_namespace)]
        feeds += [(objs[kind], lambda e, o, n, short=short: v.on_volume(short, e, o, n)) for kind, short in VOLUMES.items()]
        feeds += [(objs["Node"], v.on_node), (objs["ResourceSlice"], v.on_slice), (self.claims, v.on_claim),
                  (self.pods, v.on_pod)]
        for by_key, handler in feeds:  # the controller's informer order: classes ... nodes, slices, claims, pods
            for obj in by_key.values():
                handler("ADDED", None, obj)

    def decide(self, key: str, scheduler_name: str) -> Decision:
        """What `_schedule_one` would do for the pod `key` (and assume it, when placed)."""
        from driver.controller.podclaims import resolve_claims
        from driver.scheduler.cycle import Unschedulable, schedule

        pod, warnings = self._prepare(key, scheduler_name)
        templates = self.inputs.objects["ResourceClaimTemplate"]
        claims, why, _ = resolve_claims(pod, self.claims.get, templates.get)
        if why is not None:
            raise InputError(f"{self.inputs.where('Pod', key)}: {why} (the input must hold the pod's claims)")
        names = _pod_claim_names(pod)
        plan = plan_claims(claims, self.view.allocation_of, self.view.node_of)
        if plan.conflict:
            return Decision(key, "Unschedulable", message=plan.conflict, warnings=warnings)
        target = pod
        with self.view.lock:
            result = schedule(target, plan.pending, self.view.state, self.view.classes, self.packing, self.now,
                              allocated=plan.allocated)
        from driver.scheduler.packing.scoring import strategy_for

        strategy = strategy_for(pod, self.packing)
        existing = [_claim(names, c["metadata"]["name"], dict(self.view.allocation_of(c) or {}), True)
                    for c in claims if c not in plan.pending]  # allocated before (shared): kept as they are
        if not isinstance(result, Unschedulable):
            self._assume(pod, result.node, claims, result.allocations)
            new = [_claim(names, n, a, False) for n, a in result.allocations.items()]
            return Decision(key, "Scheduled", result.node, strategy, existing + new, warnings=warnings)
        refusals = [{"node": n, "plugin": r.plugin, "reason": r.reason, "unresolvable": r.unresolvable}
                    for n, r in sorted(result.rejections.items())]
        decision = Decision(key, "Unschedulable", None, strategy, existing, plan.explain(result.reason), refusals,
                            warnings=warnings)
        if self.preemption:
            self._preempt(decision, target, plan, result, names)
        return decision

    def _prepare(self, key: str, scheduler_name: str) -> tuple[dict, list[str]]:
        """The pod as the controller would get it, or InputError when it could not get there."""
        from driver.scheduler.labels import SelectorError
        from driver.scheduler.packing.scoring import ConfigError, strategy_for
        from driver.scheduler.plugins.noderesources import PodSpecError
        from driver.scheduler.podinfo import pod_info

        where = self.inputs.where("Pod", key)
        pod = self.pods.get(key)
        if pod is None:
            raise InputError(f"pod {key} not found in the input")
        meta, spec = pod["metadata"], pod.get("spec") or {}
        if spec.get("nodeName"):
            raise InputError(f"{where}: already bound to node {spec['nodeName']}: nothing to schedule")
        if meta.get("deletionTimestamp") or (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
            raise InputError(f"{where}: finished or being deleted: nothing to schedule")
        warnings = []
        if spec.get("schedulerName", "default-scheduler") != scheduler_name:
            warnings.append(f"spec.schedulerName is {spec.get('schedulerName', 'default-scheduler')!r}, not "
                            f"{scheduler_name!r}: the controller would leave this pod alone")
        if spec.get("schedulingGates"):
            gates = ", ".join(str(g.get("name")) for g in spec["schedulingGates"])
            warnings.append(f"scheduling gates ({gates}): the controller waits until they are removed")
        try:
            pod_info(pod)
            strategy_for(pod, self.packing)
            pod, made = claims_from_templates(pod, self.inputs.objects["ResourceClaimTemplate"])
        except (PodSpecError, SelectorError, ConfigError, ValueError) as exc:
            raise InputError(f"{where}: {exc}") from None
        for claim in made:
            self.claims[f"{claim['metadata']['namespace']}/{claim['metadata']['name']}"] = claim
            self.view.on_claim("ADDED", None, claim)
        self.pods[key] = pod
        return pod, warnings

    def _assume(self, pod: dict, node: str, claims: list[dict], allocations: dict[str, dict]) -> None:
        """Count the decision (`view.assume`), then what the binder writes (allocation, reservation,
        binding) as the informers would echo it."""
        by_name = {c["metadata"]["name"]: c for c in claims}
        self.view.assume(pod, node, {by_name[n]["metadata"]["uid"]: (n, a) for n, a in allocations.items()})
        ref = {"resource": "pods", "name": pod["metadata"]["name"], "uid": pod["metadata"]["uid"]}
        for c in claims:
            status = dict(c.get("status") or {})
            status.setdefault("allocation", allocations.get(c["metadata"]["name"]))
            status["reservedFor"] = list(status.get("reservedFor") or []) + [ref]
            self.claims[f"{c['metadata']['namespace']}/{c['metadata']['name']}"] = written = {**c, "status": status}
            self.view.on_claim("MODIFIED", c, written)
        key = f"{pod['metadata']['namespace']}/{pod['metadata']['name']}"
        self.pods[key] = bound = {**pod, "spec": {**pod.get("spec", {}), "nodeName": node}}
        self.view.on_pod("MODIFIED", pod, bound)

    def _preempt(self, decision: Decision, target: dict, plan: ClaimPlan, failed: Any, names: dict[str, str]) -> None:
        from driver.scheduler.preemption import NotPreempting, preempt

        with self.view.lock:
            outcome = preempt(target, plan.pending, self.view.state, failed,
                              lambda v: self.view.freed_by(v, self.claims.get), self.pdbs,
                              classes=self.view.classes, now=self.now, allocated=plan.allocated)
        if isinstance(outcome, NotPreempting):
            decision.preemption = {"node": None, "victims": [], "reason": outcome.reason}
            return
        decision.outcome, decision.node = "Preempting", outcome.node
        decision.claims += [_claim(names, n, a, False) for n, a in outcome.placement.allocations.items()]
        decision.preemption = {
            "node": outcome.node, "pdbViolations": outcome.pdb_violations,
            "victims": [{"pod": v.key, "node": v.node, "priority": v.priority, "uid": v.uid} for v in outcome.victims],
        }


# ---- the command ----------------------------------------------------------------------------


def _packing(args: argparse.Namespace) -> Any:
    from driver.scheduler.packing.scoring import ConfigError, PackingConfig, check_strategy, parse_config

    packing = PackingConfig()
    if args.config:
        try:
            packing = parse_config(load_yaml(args.config, "--config"), args.config)
        except InputFileError as exc:
            raise InputError(str(exc)) from None
        except ConfigError as exc:
            raise InputError(f"--config {args.config}: {exc}") from None
    if args.strategy:
        try:
            packing = replace(packing, strategy=check_strategy(args.strategy, "--strategy"))
        except ConfigError as exc:
            raise InputError(str(exc)) from None
    return packing


def _pending(pod: Mapping[str, Any]) -> bool:
    meta, spec = pod.get("metadata") or {}, pod.get("spec") or {}
    done = (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")
    return not spec.get("nodeName") and not meta.get("deletionTimestamp") and not done


def dry_run(paths: list[str], pods: list[str] | None = None, packing: Any = None, now: str | None = None,
            preemption: bool = True, scheduler_name: str = "gpu-dra-scheduler") -> tuple[list[Decision], list[str]]:
    """Decisions for the pods (default: the pending pods of the last file) and the cluster's warnings."""
    from driver.scheduler.packing.scoring import PackingConfig

    inputs = load(paths)
    if pods:
        keys = [p if "/" in p else f"default/{p}" for p in pods]
    else:
        keys = [k for k in dict.fromkeys(inputs.last) if _pending(inputs.objects["Pod"][k])]
        if not keys:
            raise InputError(f"{paths[-1]}: no pending Pod (one without spec.nodeName) to schedule; name one with --pod")
    now = now or dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    with _view_errors() as warnings:
        run = DryRun(inputs, packing or PackingConfig(), now, preemption)
        decisions = [run.decide(k, scheduler_name) for k in dict.fromkeys(keys)]
    return decisions, warnings


@contextlib.contextmanager
def _view_errors() -> Iterator[list[str]]:
    """What the view logs about the input (a bad slice, two allocations of one device): the
    controller logs it and carries on; the dry run does too, and reports it as warnings."""
    out: list[str] = []
    view_logger = logging.getLogger("driver.controller.view")

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            event = record.msg if isinstance(record.msg, dict) else {"event": record.getMessage()}
            fields = [f"{k}={v}" for k, v in event.items() if k not in ("event", "level", "logger", "timestamp")]
            out.append(" ".join([f"{event.get('event', '')}:", *fields]))

    handler, propagate = Collect(logging.WARNING), view_logger.propagate
    view_logger.addHandler(handler)
    view_logger.propagate = False
    try:
        yield out
    finally:
        view_logger.removeHandler(handler)
        view_logger.propagate = propagate


def run(args: argparse.Namespace) -> int:
    from driver.allocator.inventory import SliceError
    from driver.allocator.usage import UsageError

    try:
        now = rfc3339(args.now, "--now") if args.now is not None else None
        decisions, warnings = dry_run(args.filename, args.pod, _packing(args), now, not args.no_preemption,
                                      args.scheduler_name)
    except (InputError, FlagError, SliceError, UsageError) as exc:
        print(f"gpu-dra schedule: {exc}", file=sys.stderr)
        return 2
    doc = {"pods": [d.to_dict() for d in decisions], "warnings": warnings}
    if args.output == "json":
        print(json.dumps(doc, indent=2))
    elif args.output == "yaml":
        print(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True), end="")
    else:
        print(format_text(decisions, warnings), end="")
    return 0 if all(d.outcome != "Unschedulable" for d in decisions) else 1


def format_text(decisions: list[Decision], warnings: list[str]) -> str:
    """The human output: one block per pod (see the README section on reading it)."""
    lines = [f"warning: {w}" for w in warnings]
    for d in decisions:
        pre = d.preemption or {}
        if d.outcome == "Scheduled":
            lines.append(f"{d.pod}: scheduled on node {d.node} (strategy {d.strategy})")
        elif d.outcome == "Preempting":
            lines.append(f"{d.pod}: would preempt {len(pre['victims'])} pod(s) on node {d.node}, then run there "
                         f"(strategy {d.strategy})")
        else:
            lines.append(f"{d.pod}: unschedulable: {d.message}")
        lines += [f"  warning: {w}" for w in d.warnings]
        for v in pre.get("victims") or []:
            lines.append(f"  victim  {v['pod']} (priority {v['priority']})")
        if pre.get("pdbViolations"):
            lines.append(f"  victims whose eviction violates a PodDisruptionBudget: {pre['pdbViolations']}")
        for c in d.claims:
            results = ((c["allocation"].get("devices") or {}).get("results")) or []
            label = f"  claim   {c['name']}{' (already allocated)' if c['alreadyAllocated'] else ''}:"
            lines += [f"{label} {r.get('request')} → {r.get('driver')}/{r.get('pool')}/{r.get('device')}" for r in results]
            lines += [] if results else [f"{label} no devices"]
        if d.outcome == "Scheduled":
            continue
        if d.outcome == "Preempting":
            lines.append(f"  without preemption: {d.message}")
        if d.nodes:
            rows = [("NODE", "FILTER", "REASON")] + [(n["node"], n["plugin"], n["reason"]) for n in d.nodes]
            w0, w1 = (max(len(r[i]) for r in rows) for i in (0, 1))
            lines += [f"  {n.ljust(w0)}  {p.ljust(w1)}  {r}" for n, p, r in rows]
        if d.outcome == "Unschedulable" and pre.get("reason"):
            lines.append(f"  preemption: {pre['reason']}")
    return "\n".join(lines) + "\n"

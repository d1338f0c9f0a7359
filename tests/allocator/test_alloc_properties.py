"""Property tests: random inventories and claims, checked by an independent checker.

The checker re-derives everything from the allocation dicts and plain-Python versions of the
selectors (never the allocator's own code): no exclusive device twice, counters and capacities
never exceeded, selectors, counts, taints and constraints honoured. For small cases a brute-force
search also confirms that a failure really means "no allocation exists", and `quick_reject`
never rejects a node on which `allocate` succeeds.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from fractions import Fraction
from typing import Callable

from alloc_fixtures import DRIVER, FRACTIONAL_CLASS, GPU_CLASS, MIG_CLASS, classes
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from driver.allocator import AllocationFailure, NodeUsage, allocate, build_inventories, quick_reject
from driver.dra.quantity import format_quantity, parse_quantity

# Selectors as (CEL, equivalent Python predicate over the raw device dict).
SELECTORS: list[tuple[str, Callable[[dict], bool]]] = [
    (f"device.capacity['{DRIVER}'].memory.compareTo(quantity('40Gi')) >= 0",
     lambda d: parse_quantity(d["capacity"]["memory"]["value"]) >= 40 * 2**30),
    (f"device.attributes['{DRIVER}'].rack == 'a'", lambda d: d["attributes"]["rack"]["string"] == "a"),
    (f"device.attributes['{DRIVER}'].driverVersion.isGreaterThan(semver('550.0.0'))",
     lambda d: tuple(map(int, d["attributes"]["driverVersion"]["version"].split("."))) > (550, 0, 0)),
]
TYPES = {GPU_CLASS: "gpu", MIG_CLASS: "mig", FRACTIONAL_CLASS: "fractional"}
TAINT = {"key": "example.com/bad", "value": "1", "effect": "NoSchedule"}
TOLERATION = {"key": "example.com/bad", "operator": "Exists"}


@st.composite
def inventories(draw) -> list[dict]:
    devices, counter_sets = [], []
    for g in range(draw(st.integers(1, 3))):
        common = {
            "rack": {"string": draw(st.sampled_from("ab"))},
            "driverVersion": {"version": draw(st.sampled_from(["535.183.1", "550.54.15", "560.1.0"]))},
        }
        taints = [TAINT] if draw(st.integers(0, 5)) == 0 else []
        kind = draw(st.sampled_from(["whole", "dynamic", "fractional"]))
        mem = draw(st.sampled_from([24, 40, 80]))
        if kind == "fractional":
            step = draw(st.sampled_from(["100m", "250m"]))
            devices.append({"name": f"gpu-{g}", "allowMultipleAllocations": True, "taints": taints,
                            "attributes": {"type": {"string": "fractional"}, "uuid": {"string": f"U{g}"}, **common},
                            "capacity": {"memory": {"value": f"{mem}Gi", "requestPolicy": {"default": "0"}},
                                         "compute": {"value": "1", "requestPolicy": {
                                             "default": "1", "validRange": {"min": step, "step": step}}}}})
            continue
        full = {"name": f"gpu-{g}", "taints": taints,
                "attributes": {"type": {"string": "gpu"}, "uuid": {"string": f"U{g}"}, **common},
                "capacity": {"memory": {"value": f"{mem}Gi"}}}
        devices.append(full)
        if kind == "dynamic":
            cset = f"gpu-{g}-counter-set"
            counter_sets.append({"name": cset, "counters": {f"s{i}": {"value": "1"} for i in range(4)}})
            full["consumesCounters"] = [{"counterSet": cset, "counters": {f"s{i}": {"value": "1"} for i in range(4)}}]
            for size, starts in ((1, (0, 1, 2, 3)), (2, (0, 2))):
                if not draw(st.booleans()):
                    continue
                for s in starts:
                    devices.append({"name": f"gpu-{g}-mig-{size}-{s}", "taints": taints,
                                    "attributes": {"type": {"string": "mig"}, "parentUUID": {"string": f"U{g}"},
                                                   **common},
                                    "capacity": {"memory": {"value": f"{mem * size // 4}Gi"}},
                                    "consumesCounters": [{"counterSet": cset, "counters": {
                                        f"s{i}": {"value": "1"} for i in range(s, s + size)}}]})
    spec = {"driver": DRIVER, "pool": {"name": "n1", "generation": 1, "resourceSliceCount": 1},
            "nodeName": "n1", "devices": devices, "sharedCounters": counter_sets}
    return [{"metadata": {"name": "s"}, "spec": spec}]


@st.composite
def exactly(draw, name: str) -> dict:
    cls = draw(st.sampled_from([GPU_CLASS, GPU_CLASS, MIG_CLASS, FRACTIONAL_CLASS]))
    body: dict = {"deviceClassName": cls}
    mode = draw(st.sampled_from(["ExactCount"] * 6 + ["All"]))
    if mode == "All":
        body["allocationMode"] = "All"
    else:
        body["count"] = draw(st.integers(1, 2))
    sels = draw(st.lists(st.integers(0, len(SELECTORS) - 1), max_size=1, unique=True))
    if cls == MIG_CLASS:
        sels = [i for i in sels if i != 0]
    if sels:
        body["selectors"] = [{"cel": {"expression": SELECTORS[i][0]}} for i in sels]
    if cls == FRACTIONAL_CLASS and draw(st.booleans()):
        body["capacity"] = {"requests": {"compute": draw(st.sampled_from(["100m", "300m", "500m", "700m"]))}}
    if draw(st.integers(0, 3)) == 0:
        body["tolerations"] = [TOLERATION]
    if draw(st.integers(0, 9)) == 0:
        body["adminAccess"] = True
    return {"name": name, **body}


@st.composite
def claims(draw, pod: int) -> list[dict]:
    out = []
    for c in range(draw(st.integers(1, 2))):
        reqs = []
        for r in range(draw(st.integers(1, 2))):
            if draw(st.integers(0, 3)) == 0:
                subs = [draw(exactly(f"s{k}")) for k in range(2)]
                for sub in subs:
                    sub.pop("adminAccess", None)  # not allowed in a subrequest
                reqs.append({"name": f"r{r}", "firstAvailable": subs})
            else:
                body = draw(exactly(f"r{r}"))
                reqs.append({"name": body.pop("name"), "exactly": body})
        constraints = []
        if len(reqs) > 1 and draw(st.booleans()):
            attr = draw(st.sampled_from(["rack", "uuid", "parentUUID"]))
            kind = draw(st.sampled_from(["matchAttribute", "distinctAttribute"]))
            constraints.append({kind: f"{DRIVER}/{attr}"})
        out.append({"metadata": {"name": f"p{pod}c{c}", "namespace": "t", "uid": f"p{pod}c{c}"},
                    "spec": {"devices": {"requests": reqs, "constraints": constraints}}})
    return out


# ----------------------------------------------------------------------------- independent checker


def _specs(claim: dict) -> dict[str, dict]:
    """Request name in results ("r0" or "r0/s1") → request body."""
    out = {}
    for r in claim["spec"]["devices"]["requests"]:
        if "exactly" in r:
            out[r["name"]] = r["exactly"]
        else:
            for s in r["firstAvailable"]:
                out[f"{r['name']}/{s['name']}"] = s
    return out


def _matches(body: dict, dev: dict) -> bool:
    if dev["attributes"]["type"]["string"] != TYPES[body["deviceClassName"]]:
        return False
    preds = {expr: fn for expr, fn in SELECTORS}
    return all(preds[s["cel"]["expression"]](dev) for s in body.get("selectors", []))


def _tolerated(body: dict, dev: dict) -> bool:
    return not dev.get("taints") or bool(body.get("tolerations"))


def _consumed(body: dict, dev: dict) -> dict[str, Fraction] | None:
    """Consumable capacity an allocation takes (policies limited to what the generator makes)."""
    out = {}
    asked = (body.get("capacity") or {}).get("requests", {})
    for name, cap in dev["capacity"].items():
        total = parse_quantity(cap["value"])
        pol = cap.get("requestPolicy", {})
        if name in asked:
            amount = parse_quantity(asked[name])
            rng = pol.get("validRange")
            if rng:
                lo, step = parse_quantity(rng["min"]), parse_quantity(rng["step"])
                k = 0
                while lo + k * step < amount:
                    k += 1
                amount = lo + k * step
        else:
            amount = parse_quantity(pol["default"]) if "default" in pol else total
        if amount > total:
            return None
        out[name] = amount
    return out


@dataclass
class Live:
    claim: dict
    allocation: dict


def check_state(devices: dict[str, dict], counters: dict[str, dict], live: list[Live]) -> None:
    exclusive: dict[str, str] = {}
    shared_used: dict[str, dict[str, Fraction]] = {}
    share_ids: set[tuple[str, str]] = set()
    in_use: set[str] = set()
    for item in live:
        specs = _specs(item.claim)
        for res in item.allocation["devices"]["results"]:
            dev = devices[res["device"]]
            body = specs[res["request"]]
            assert res["driver"] == DRIVER and res["pool"] == "n1"
            assert _matches(body, dev), (res, body)
            assert _tolerated(body, dev), res
            if body.get("adminAccess"):
                assert res.get("adminAccess") is True
                continue
            if dev.get("allowMultipleAllocations"):
                assert (res["device"], res["shareID"]) not in share_ids
                share_ids.add((res["device"], res["shareID"]))
                expect = _consumed(body, dev)
                got = {k: parse_quantity(v) for k, v in res["consumedCapacity"].items()}
                assert got == expect, (got, expect)
                for k, v in got.items():
                    shared_used.setdefault(res["device"], {})[k] = shared_used.get(res["device"], {}).get(k, 0) + v
            else:
                assert res["device"] not in exclusive, f"{res['device']} allocated twice"
                exclusive[res["device"]] = item.claim["metadata"]["name"]
            in_use.add(res["device"])
    for name, used in shared_used.items():
        for k, v in used.items():
            assert v <= parse_quantity(devices[name]["capacity"][k]["value"]), (name, k, v)
    totals: dict[tuple[str, str], Fraction] = {}
    for name in in_use:
        for cc in devices[name].get("consumesCounters", []):
            for c, v in cc["counters"].items():
                key = (cc["counterSet"], c)
                totals[key] = totals.get(key, 0) + parse_quantity(v["value"])
    for (cset, c), v in totals.items():
        assert v <= parse_quantity(counters[cset]["counters"][c]["value"]), (cset, c, v)


def check_claim(devices: dict[str, dict], claim: dict, allocation: dict) -> None:
    specs = _specs(claim)
    results = allocation["devices"]["results"]
    assert allocation["nodeSelector"]["nodeSelectorTerms"][0]["matchFields"][0]["values"] == ["n1"]
    for r in claim["spec"]["devices"]["requests"]:
        mine = [x for x in results if x["request"].split("/")[0] == r["name"]]
        chosen = {x["request"] for x in mine}
        assert len(chosen) == 1, (r["name"], chosen)
        body = specs[chosen.pop()]
        if body.get("allocationMode") == "All":
            assert sorted(x["device"] for x in mine) == sorted(n for n, d in devices.items() if _matches(body, d))
        else:
            assert len(mine) == body["count"]
            assert len({x["device"] for x in mine}) == len(mine)
    for c in claim["spec"]["devices"]["constraints"]:
        attr = (c.get("matchAttribute") or c.get("distinctAttribute")).split("/")[1]
        values = [devices[x["device"]]["attributes"].get(attr, {}).get("string") for x in results]
        assert None not in values
        if "matchAttribute" in c:
            assert len(set(values)) == 1, values
        else:
            assert len(set(values)) == len(values), values


# ----------------------------------------------------------------------------- brute force


def feasible(devices: dict[str, dict], counters: dict[str, dict], live: list[Live], pod: list[dict]) -> bool:
    """Is there any allocation of `pod` next to `live`? Exhaustive over alternatives and devices."""
    names = list(devices)
    groups = []  # (claim index, [(result name, body)])
    for ci, c in enumerate(pod):
        for r in c["spec"]["devices"]["requests"]:
            if "exactly" in r:
                groups.append((ci, [(r["name"], r["exactly"])]))
            else:
                groups.append((ci, [(f"{r['name']}/{s['name']}", s) for s in r["firstAvailable"]]))
    for choice in itertools.product(*[alts for _, alts in groups]):
        options = []
        for (ci, _), (rname, body) in zip(groups, choice):
            ok = [n for n in names if _matches(body, devices[n]) and _tolerated(body, devices[n])]
            if body.get("allocationMode") == "All":
                all_match = [n for n in names if _matches(body, devices[n])]
                if not all_match or len(ok) != len(all_match):
                    options = None
                    break
                options.append([tuple(all_match)])
            else:
                options.append(list(itertools.combinations(ok, body["count"])))
        if options is None:
            continue
        for combo in itertools.product(*options):
            results: dict[int, list[dict]] = {}
            for (ci, _), (rname, body), devs in zip(groups, choice, combo):
                for n in devs:
                    results.setdefault(ci, []).append({"request": rname, "driver": DRIVER, "pool": "n1", "device": n,
                                                       **({"adminAccess": True} if body.get("adminAccess") else {}),
                                                       **({"shareID": f"x{ci}{rname}{n}", "consumedCapacity": {
                                                           k: format_quantity(v) for k, v in (_consumed(body, devices[n]) or {}).items()}}
                                                          if devices[n].get("allowMultipleAllocations") else {})})
            trial = live + [Live(pod[ci], {"devices": {"results": rs}}) for ci, rs in results.items()]
            try:
                for (ci, _), (rname, body), devs in zip(groups, choice, combo):
                    for n in devs:
                        if devices[n].get("allowMultipleAllocations") and _consumed(body, devices[n]) is None:
                            raise AssertionError("policy")
                check_state(devices, counters, trial)
                for ci, rs in results.items():
                    check_constraints_only(devices, pod[ci], rs)
            except AssertionError:
                continue
            return True
    return False


def check_constraints_only(devices: dict[str, dict], claim: dict, results: list[dict]) -> None:
    for c in claim["spec"]["devices"]["constraints"]:
        attr = (c.get("matchAttribute") or c.get("distinctAttribute")).split("/")[1]
        values = [devices[x["device"]]["attributes"].get(attr, {}).get("string") for x in results]
        assert None not in values
        assert (len(set(values)) == 1) if "matchAttribute" in c else (len(set(values)) == len(values))


class Reverse:
    def order(self, request, candidates, inventory, usage):
        return candidates[::-1]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_random_workloads_respect_every_rule(data):
    slices = data.draw(inventories())
    inv = build_inventories(slices)["n1"]
    devices = {d["name"]: d for d in slices[0]["spec"]["devices"]}
    counters = {c["name"]: c for c in slices[0]["spec"]["sharedCounters"]}
    usage, live, cls = NodeUsage(), [], classes()
    for pod in range(data.draw(st.integers(1, 6))):
        pod_claims = data.draw(claims(pod))
        if live and data.draw(st.integers(0, 4)) == 0:
            gone = live.pop(data.draw(st.integers(0, len(live) - 1)))
            usage.remove(gone.allocation["_picks"])
        # Half of the pods go through a chooser (as packing strategies do): reversed order.
        result = allocate(pod_claims, inv, usage, cls, chooser=Reverse() if pod % 2 else None)
        if isinstance(result, AllocationFailure):
            assert not result.permanent, result.reason
            assert result.reason
            small = len(devices) <= 8 and sum(len(c["spec"]["devices"]["requests"]) for c in pod_claims) <= 3
            event("failed, brute-force checked" if small else "failed")
            if small:
                assert not feasible(devices, counters, live, pod_claims), result.reason
            continue
        assert quick_reject(pod_claims, inv, usage, cls) is None
        event("allocated")
        for c, ca in zip(pod_claims, result.claims):
            check_claim(devices, c, ca.allocation)
        new = [Live(c, dict(ca.allocation, _picks=ca.picks)) for c, ca in zip(pod_claims, result.claims)]
        check_state(devices, counters, live + new)
        usage.add(result.picks)
        live.extend(new)
    rebuilt = NodeUsage.from_claims(inv, [{"status": {"allocation": item.allocation}} for item in live])
    assert rebuilt.exclusive == usage.exclusive
    assert {k: (u.refs, u.share_ids, u.units) for k, u in rebuilt.shared.items()} == \
        {k: (u.refs, u.share_ids, u.units) for k, u in usage.shared.items()}
    def nonzero(counters: dict) -> dict:
        return {k: {c: v for c, v in cs.items() if v} for k, cs in counters.items() if any(cs.values())}

    assert nonzero(rebuilt.counter_units) == nonzero(usage.counter_units)

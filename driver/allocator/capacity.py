"""Consumable capacity (KEP-5075): how much of a shared device one request takes.

A device with `allowMultipleAllocations` is shared by several allocations, each consuming part
of its capacities. What a request consumes follows the device's request policy: a requested
amount is rounded up to the next valid value or range step (a "250m" ask on a device that only
hands out quarters stays 250m, a "300m" ask becomes 500m on a 250m/500m/1 device); a capacity the
request does not mention is charged the policy default or, without one, the whole capacity —
so a plain request on a shared device takes it all unless the driver says otherwise.
On an ordinary device the requested amounts only filter: the device must be at least that big.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Mapping

from driver.allocator.inventory import UNIT, DeviceView, RequestPolicy, to_units


def _round(amount: int, policy: RequestPolicy | None) -> int | None:
    """A requested amount (nano-units) adjusted by the device's policy (in nano-units), or None
    when the policy cannot serve it."""
    if policy is None:
        return amount
    if policy.valid_values:
        for v in policy.valid_values:
            if v >= amount:
                return v  # type: ignore[return-value]
        return None
    if policy.min is not None:
        lo = policy.min
        if amount < lo:  # type: ignore[operator]
            amount = lo  # type: ignore[assignment]
        elif policy.step:
            steps = -((lo - amount) // policy.step)  # type: ignore[operator]  # ceil((amount - min) / step)
            amount = lo + steps * policy.step  # type: ignore[operator]
        if policy.max is not None and amount > policy.max:  # type: ignore[operator]
            return None
    return amount


def _resolve(device: DeviceView, key: str) -> str:
    return f"{device.driver}/{key[2:]}" if key.startswith("*/") else key


def consumed_units(device: DeviceView, requests: Mapping[str, int]) -> tuple[tuple[str, int], ...] | None:
    """What one allocation on `device` consumes, as ((qualified capacity name, nano-units), ...),
    or None when the device cannot serve the request (a capacity it lacks, an amount outside the
    policy or above the device's capacity). Ordinary devices consume nothing: ()."""
    caps = device.cap_units
    asked = {}
    for key, amount in requests.items():
        qn = _resolve(device, key)
        total = caps.get(qn)
        if total is None or (not device.allow_multiple and amount > total):
            return None
        asked[qn] = amount
    if not device.allow_multiple:
        return ()
    out = []
    for qn, total in caps.items():
        policy = device.policy_units.get(qn)
        if qn in asked:
            amount = _round(asked[qn], policy)
            if amount is None:
                return None
        elif policy is not None and policy.default is not None:
            amount = policy.default  # type: ignore[assignment]
        else:
            amount = total
        if amount > total:
            return None
        out.append((qn, amount))
    return tuple(out)


def consumed_capacity(device: DeviceView, requests: Mapping[str, Fraction]) -> dict[str, Fraction] | None:
    """`consumed_units` in exact quantities: {qualified capacity name: amount}, or None.

    `requests` is keyed like `RequestSpec.capacity_requests` (qualified names, or "*/name" for a
    bare name that belongs to the device's driver)."""
    units = consumed_units(device, {k: to_units(v) for k, v in requests.items()})
    return None if units is None else {qn: Fraction(u, UNIT) for qn, u in units}


_MISS = object()


def consumption(device: DeviceView, requests: Mapping[str, int], key: tuple) -> tuple[tuple[str, int], ...] | None:
    """`consumed_units` memoised on the device per request shape (`RequestSpec.capacity_key`):
    the search asks this for every candidate of every attempt."""
    hit = device.consume_cache.get(key, _MISS)
    if hit is _MISS:
        hit = device.consume_cache[key] = consumed_units(device, requests)
    return hit  # type: ignore[return-value]

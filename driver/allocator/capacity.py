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

from driver.allocator.inventory import DeviceView, RequestPolicy, to_units


def _round(amount: Fraction, policy: RequestPolicy | None) -> Fraction | None:
    if policy is None:
        return amount
    if policy.valid_values:
        for v in policy.valid_values:
            if v >= amount:
                return v
        return None
    if policy.min is not None:
        if amount < policy.min:
            amount = policy.min
        elif policy.step:
            steps = -((policy.min - amount) // policy.step)  # ceil((amount - min) / step)
            amount = policy.min + steps * policy.step
        if policy.max is not None and amount > policy.max:
            return None
    return amount


def requested_on(device: DeviceView, requests: Mapping[str, Fraction]) -> dict[str, Fraction] | None:
    """The claim's capacity requests keyed by the device's qualified names, or None if the device
    lacks one of them. Bare request names ("*/memory") take the device driver's domain."""
    out = {}
    for key, amount in requests.items():
        qn = f"{device.driver}/{key[2:]}" if key.startswith("*/") else key
        if device.capacity_value(qn) is None:
            return None
        out[qn] = amount
    return out


def consumed_capacity(device: DeviceView, requests: Mapping[str, Fraction]) -> dict[str, Fraction] | None:
    """What one allocation on `device` consumes per qualified capacity name, or None when the
    device cannot serve the request (missing capacity, amount outside the policy or the device).
    For an ordinary device the result is empty (nothing is shared) when it is big enough."""
    asked = requested_on(device, requests)
    if asked is None:
        return None
    if not device.allow_multiple:
        for qn, amount in asked.items():
            if amount > device.capacity_value(qn):  # type: ignore[operator]
                return None
        return {}
    out: dict[str, Fraction] = {}
    for domain, ids in device.capacity.items():
        for ident, total in ids.items():
            qn = f"{domain}/{ident}"
            policy = device.policies.get(qn)
            if qn in asked:
                amount = _round(asked[qn], policy)
                if amount is None:
                    return None
            elif policy is not None and policy.default is not None:
                amount = policy.default
            else:
                amount = total
            if amount > total:
                return None
            out[qn] = amount
    return out


_MISS = object()


def consumption(device: DeviceView, requests: Mapping[str, Fraction],
                key: tuple | None = None) -> tuple[dict[str, Fraction], tuple[tuple[str, int], ...]] | None:
    """`consumed_capacity` plus the same amounts in nano-units, memoised on the device per request
    shape (`key`, e.g. `RequestSpec.capacity_key`): the search asks this for every candidate."""
    if key is None:
        key = tuple(sorted(requests.items()))
    hit = device.consume_cache.get(key, _MISS)
    if hit is _MISS:
        amounts = consumed_capacity(device, requests)
        hit = None if amounts is None else (amounts, tuple((qn, to_units(v)) for qn, v in amounts.items()))
        device.consume_cache[key] = hit
    return hit  # type: ignore[return-value]

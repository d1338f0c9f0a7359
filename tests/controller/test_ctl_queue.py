"""Work queue: dedup, processing/dirty, backoff, parking — driven by a fake clock (no sleeps)."""

from __future__ import annotations

import threading

import pytest

from driver.controller.queue import Backoff, WorkQueue, serve


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make(max_park: float = 60.0) -> tuple[WorkQueue, Clock]:
    clock = Clock()
    return WorkQueue(Backoff(initial=1.0, maximum=8.0), max_park=max_park, clock=clock), clock


def drain(q: WorkQueue) -> list:
    out = []
    while (k := q.get(timeout=0)) is not None:
        out.append(k)
        q.done(k)
    return out


def test_dedup_and_order() -> None:
    q, _ = make()
    for k in ["a", "b", "a", "c", "b"]:
        q.add(k)
    assert drain(q) == ["a", "b", "c"]


def test_change_while_processing_is_retried_after_done_not_concurrently() -> None:
    q, _ = make()
    q.add("a")
    assert q.get(timeout=0) == "a"
    q.add("a")  # pod changed while a worker holds it
    assert q.get(timeout=0) is None  # never handed to a second worker
    q.done("a")
    assert q.get(timeout=0) == "a"


def test_backoff_doubles_and_caps_and_forget_resets() -> None:
    q, clock = make()
    delays = [q.retry_later("a") for _ in range(5)]
    assert delays == [1.0, 2.0, 4.0, 8.0, 8.0]
    q.forget("a")
    assert q.retry_later("a") == 1.0


def test_delayed_key_becomes_ready_when_due() -> None:
    q, clock = make()
    q.add("a")
    k = q.get(timeout=0)
    q.retry_later(k)
    q.done(k)
    assert q.get(timeout=0) is None
    clock.now += 0.99
    assert q.get(timeout=0) is None
    clock.now += 0.02
    assert q.get(timeout=0) == "a"


def test_add_overrides_backoff() -> None:
    q, _ = make()
    q.retry_later("a")
    q.add("a")  # the pod itself changed: try at once
    assert q.get(timeout=0) == "a"
    q.done("a")
    assert q.get(timeout=0) is None  # the stale delayed entry does not fire twice


def test_parked_waits_for_cluster_event_then_honours_backoff() -> None:
    q, clock = make()
    q.park("p")
    clock.now += 30
    assert q.get(timeout=0) is None  # no event: stays parked
    assert q.depth()["parked"] == 1
    assert q.cluster_changed() == 1
    assert q.get(timeout=0) == "p"  # backoff (1 s) already elapsed while parked


def test_parked_event_before_backoff_elapsed_waits_for_backoff() -> None:
    q, clock = make()
    q.park("p")
    q.park("p")  # second failure while parked is ignored (still parked)
    q.cluster_changed()
    assert q.get(timeout=0) is None
    clock.now += 1.0
    assert q.get(timeout=0) == "p"


def test_parked_retried_after_max_park_without_event() -> None:
    q, clock = make(max_park=5.0)
    q.park("p")
    clock.now += 5.0
    assert q.get(timeout=0) == "p"


def test_idle_and_len() -> None:
    q, _ = make()
    assert q.idle() and len(q) == 0
    q.add("a")
    assert not q.idle() and len(q) == 1
    k = q.get(timeout=0)
    assert not q.idle()
    q.done(k)
    q.park("a")
    assert q.idle() and len(q) == 1


def test_blocking_get_wakes_on_add_and_shutdown() -> None:
    q = WorkQueue(Backoff(0.01, 0.1))
    got: list = []
    t = threading.Thread(target=lambda: got.append(q.get(timeout=10)))
    t.start()
    q.add("x")
    t.join(10)
    assert got == ["x"]
    t2 = threading.Thread(target=lambda: got.append(q.get(timeout=10)))
    t2.start()
    q.shutdown()
    t2.join(10)
    assert got == ["x", None]


@pytest.mark.parametrize("initial,maximum", [(0, 1), (-1, 1), (2, 1)])
def test_bad_backoff_rejected(initial: float, maximum: float) -> None:
    with pytest.raises(ValueError, match="backoff"):
        Backoff(initial, maximum)


def test_deaf_parked_key_ignores_cluster_events_but_not_its_own() -> None:
    q, clock = make(max_park=30.0)
    q.park("waiting-for-claim", wake_on_change=False)
    q.park("unschedulable")
    assert q.cluster_changed() == 1
    clock.now += 1.0
    assert drain(q) == ["unschedulable"]
    q.add("waiting-for-claim")  # its claim appeared
    assert drain(q) == ["waiting-for-claim"]
    q.park("again", wake_on_change=False)
    clock.now += 30.0
    assert drain(q) == ["again"]  # max_park still applies


class _Log:
    def __init__(self) -> None:
        self.events: list[tuple[str, dict]] = []

    def exception(self, event: str, **kw: object) -> None:
        self.events.append((event, kw))


def test_serve_survives_a_failing_key_and_retries_it_with_backoff() -> None:
    q, clock = make()
    stop, leading = threading.Event(), threading.Event()
    leading.set()
    handled, afters, log = [], [], _Log()

    def handle(key: str) -> None:
        if key == "a":
            raise RuntimeError("boom")
        handled.append(key)
        stop.set()

    q.add("a")
    q.add("b")
    serve(q, stop, leading, handle, log, "thing_failed", "thing", after=lambda: afters.append(1))
    assert handled == ["b"] and len(afters) == 2
    assert log.events == [("thing_failed", {"thing": "a"})]
    assert q.get(timeout=0) is None  # "a" waits for its backoff, it is not lost
    clock.now += 1.01
    assert q.get(timeout=0) == "a"

"""The Redis state a run wrote, compared with the reference runner's on the same log.

Used by the end-to-end tests (``tests/streamkit.py``) and by ``make bench-cluster``:
:func:`differences` lists the keys whose values differ, :func:`count_differences` counts the
events an item's counters (``recs:v1:itemstats:{item}``, by event type) miss or hold twice,
and :func:`diagnosis` sums both up for a failure message.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from typing import Any

from state import keys
from state.store import Store
from stream.reference import ReferenceRunner


def _close(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_close(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k]) for k in a)
    return bool(a == b)


def _certain_head(items: list[Any], head: int, margin: float) -> set[str]:
    """The entries of a list (``[[item, log_score], ...]``, best first) that stay in its first
    ``head`` under any arrival order: those whose score beats the first one below the head by
    more than ``margin`` (log space: ``s > logaddexp(next, margin)``)."""
    if len(items) <= head:
        return {i for i, _ in items}
    bound = float(items[head][1])
    floor = max(bound, margin) + math.log1p(math.exp(-abs(bound - margin)))
    return {i for i, s in items[:head] if float(s) > floor}


def _overflowed_head_differs(a: list[Any], b: list[Any], head: int, weakest: float) -> bool:
    """Space-Saving above capacity (operators/neighbours.py): a newcomer inherits the weakest
    entry's score, so every entry's score may hold up to the table's final weakest score that
    is not its own (``weakest``, the reference table's; the other run's table is assumed to
    end with a weakest score of the same size). An entry whose score beats the next one by more
    than twice that is above it under any arrival order; such entries of either list's head
    must be in the other's head. Near-ties at the head's edge may fall either way."""
    margin = math.log(2.0) + weakest
    top_a = {i for i, _ in a[:head]}
    top_b = {i for i, _ in b[:head]}
    return not (_certain_head(a, head, margin) <= top_b and _certain_head(b, head, margin) <= top_a)


def differences(ref: ReferenceRunner, store: Store, *, head: int = 5,
                models: bool = True) -> list[str]:
    """Keys whose value differs between the reference run and ``store``.

    Neighbour lists (:data:`state.keys.NEIGHBOUR_KINDS`) whose Space-Saving table overflowed
    depend on the order pairs arrived in (documented in operators/neighbours.py); for those only the
    ``head`` strongest neighbours must agree, up to the Space-Saving error bound
    (:func:`_overflowed_head_differs`). The online models learn in the order events reach
    their one subtask, which interleaves Kafka partitions differently from the log: what must
    agree is what they learnt from (:func:`model_differences`). Everything else must match
    exactly (floats to 1e-9) with equal versions. ``models=False`` leaves the models out (they
    learnt from a sample).
    """
    diffs = model_differences(ref, store) if models else []
    want = [k for k in ref.store.keys(keys.PREFIX) if keys.split_key(k)[0] not in keys.MODEL_KINDS]
    got = [k for k in store.keys(keys.PREFIX) if keys.split_key(k)[0] not in keys.MODEL_KINDS]
    diffs += [f"missing {k}" for k in sorted(set(want) - set(got))]
    diffs += [f"unexpected {k}" for k in sorted(set(got) - set(want))]
    for key in sorted(set(want) & set(got)):
        a, b = ref.store.get(key), store.get(key)
        if a is None or b is None:
            diffs.append(f"unreadable {key}")
            continue
        kind, entity = keys.split_key(key)
        if kind in keys.NEIGHBOUR_KINDS:
            cfg = ref.cfg.neighbour(kind)
            state = ref.relations[(kind, entity)]
            if len(state.scores) >= cfg.capacity:
                items_a, items_b = a.data["items"], b.data["items"]
                if _overflowed_head_differs(items_a, items_b, head, min(state.scores.values())):
                    diffs.append(f"head {key}: {items_a[:head + 1]} != {items_b[:head + 1]}")
                continue
        if a.version != b.version or not _close(a.data, b.data):
            diffs.append(f"value {key}")
    return diffs


def model_differences(ref: ReferenceRunner, store: Store) -> list[str]:
    """The models learnt from the same inputs exactly once: the same count of events in the
    collaborative model's header, user vectors for the same users, an item vector for every
    item the reference learnt (placements by content may differ: they depend on which items
    had vectors when the upsert arrived), and the same example counts in the ranker."""
    diffs: list[str] = []
    for name, fields in ((keys.MODEL_MF, ("events",)), (keys.MODEL_RANKER, ("stats",))):
        a, b = ref.store.get(keys.model_key(name)), store.get(keys.model_key(name))
        if a is None or b is None:
            diffs.append(f"model {name}: {'reference' if a is None else 'store'} has none")
            continue
        for f in fields:
            va, vb = a.data[f], b.data[f]
            if f == "stats":  # counts only: the metrics depend on the learning order
                va = {k: va[k] for k in ("positives", "negatives", "ignored")}
                vb = {k: vb[k] for k in ("positives", "negatives", "ignored")}
            if va != vb:
                diffs.append(f"model {name}.{f}: {va!r} != {vb!r}")
    for kind in (keys.KIND_USERVEC, keys.KIND_ITEMVEC):
        want = set(ref.store.keys(f"{keys.PREFIX}{kind}:"))
        got = set(store.keys(f"{keys.PREFIX}{kind}:"))
        if kind == keys.KIND_ITEMVEC:
            src = {k for k in want if ref.store.get(k).data["src"] == "cf"}  # type: ignore[union-attr]
            diffs += [f"missing {k}" for k in sorted(src - got)]
        elif want != got:
            diffs.append(f"{kind}: {len(want - got)} missing, {len(got - want)} unexpected")
    return diffs


@dataclass(frozen=True, slots=True)
class CountDifferences:
    """Events the store's per-item counters miss (``lost``) or hold twice (``double``)."""

    lost: int
    double: int


def count_differences(ref: ReferenceRunner, store: Store) -> CountDifferences:
    """Per item and event type, the reference's count against the store's: a shortfall is
    lost, an excess double-counted (an item missing from the store lost all its events)."""
    lost = double = 0
    items = set(ref.store.keys(f"{keys.PREFIX}{keys.KIND_ITEMSTATS}:"))
    items |= set(store.keys(f"{keys.PREFIX}{keys.KIND_ITEMSTATS}:"))
    for key in items:
        want, got = ref.store.get(key), store.get(key)
        a = want.data["counts"] if want is not None else {}
        b = got.data["counts"] if got is not None else {}
        for event_type in set(a) | set(b):
            gap = int(a.get(event_type, 0)) - int(b.get(event_type, 0))
            lost += max(0, gap)
            double += max(0, -gap)
    return CountDifferences(lost, double)


def diagnosis(ref: ReferenceRunner, store: Store, diffs: list[str]) -> str:
    """What a list of :func:`differences` says about the run: per kind of key, how many are
    missing, unexpected, in the head of an overflowed list, or of another value, the latter
    by the store's version against the reference's (``older``: the run's last value of the key
    never arrived, or came from fewer events; ``same version``: the same events, another
    result; ``newer``; ``value`` when either cannot be read). Other differences (a model's
    header) count as ``other``. Then the item counters' lost and double-counted events
    (:func:`count_differences`).

    >>> from state.store import MemoryStore
    >>> diagnosis(ReferenceRunner(), MemoryStore(), ["missing recs:v1:session:u1", "model x"])
    'session: 1 missing; other: 1; item counters: 0 events lost, 0 double'
    """
    found: dict[str, Counter[str]] = {}
    for diff in diffs:
        how, _, key = diff.partition(" ")
        if how not in ("missing", "unexpected", "head", "value", "unreadable") or \
                not key.startswith(keys.PREFIX):
            found.setdefault("other", Counter())[""] += 1  # a model's header, "not started"
            continue
        key = key.split(" ", 1)[0].rstrip(":")  # "head KEY: ..." names it with a colon
        kind, _ = keys.split_key(key)
        if how == "value":
            a, b = ref.store.get(key), store.get(key)
            if a is not None and b is not None:
                how = ("older" if b.version < a.version else
                       "same version" if b.version == a.version else "newer")
        found.setdefault(kind, Counter())[how] += 1
    parts = [f"{kind}: " + ", ".join(f"{n} {how}".strip() for how, n in sorted(c.items()))
             for kind, c in sorted(found.items(), key=lambda kv: (kv[0] == "other", kv[0]))]
    counts = count_differences(ref, store)
    return "; ".join([*parts, f"item counters: {counts.lost} events lost, "
                               f"{counts.double} double"])

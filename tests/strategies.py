"""Shared Hypothesis strategies for events and logs, and the brute-force references they are
checked against.

The alphabets are deliberately tiny (a handful of users, sessions, items and categories) so random
logs collide: the same item is hit by many users, sessions restart, baskets fill up. Time moves
forward by steps drawn from a menu that straddles every boundary the operators care about (the
session gap, the session TTL), so boundaries are crossed often without huge logs.

The references below are written from the operators' *docstrings*, not from their code: naive
recomputation from the whole log with :func:`math.fsum`, no incremental state, no log-space tricks
beyond a final ``max``-shift. Tests compare the operators against them.
"""

from __future__ import annotations

import math
import random
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import pairwise
from types import EllipsisType
from typing import Any

from hypothesis import strategies as st

from operators.config import (
    BASKET_TYPES,
    DEFAULT_EVENT_WEIGHTS,
    INTEREST_TYPES,
    EngineConfig,
    SessionConfig,
)
from operators.session import Pair
from schemas.events import Interaction, ItemUpsert

T0 = 1_700_000_000_000  # 2023-11-14, inside the schema's accepted range
MINUTE = 60_000
DAY = 86_400_000

USERS = tuple(f"u{n}" for n in range(4))
SESSIONS = tuple(f"s{n}" for n in range(3))
ITEMS = tuple(f"i{n}" for n in range(8))
CATEGORIES = tuple(f"c{n}" for n in range(3))
EVENT_TYPES = ("view", "view", "click", "add_to_cart", "purchase", "rating", "impression")

# Steps of event time between consecutive records: mostly within a session, sometimes exactly at
# or just past the 30-minute gap; TTL_STEPS adds jumps exactly at and past the 30-day TTL.
SHORT_STEPS = (0, 1_000, 1_000, 20_000, MINUTE, 10 * MINUTE, 30 * MINUTE, 31 * MINUTE)
TTL_STEPS = (*SHORT_STEPS, 30 * DAY, 31 * DAY)

Record = Interaction | ItemUpsert


# -- strategies -------------------------------------------------------------------------------
#
# Drawing every field of every record separately costs about a millisecond per record. Instead a
# record is one integer, decoded digit by digit (mixed radix); Hypothesis still shrinks it (towards
# 0 = a view of i0 by u0 in s0 with no time step), and a whole log costs one byte-string draw.

RATINGS = (0.0, 0.5, 1.0, 2.5, 4.0, 5.0, 7.5, 10.0)
# Context values: some normalise to the same scope ("mobile", " Mobile"), some to none (blank,
# over 64 characters). At most 2 devices + 2 countries + 4 dayparts = 8 scopes per item.
DEVICES = (None, "mobile", " Mobile", "web", "   ", "x" * 65)
COUNTRIES = (None, "de", "DE ", "us")
BACKDATES = (0, 0, 5_000, 2 * DAY)  # how far an upsert's event time lags its log position
KIND_SLOTS = 20                     # upsert_rate is quantised to twentieths


def _digits(code: int, *radices: int) -> list[int]:
    out = []
    for r in radices:
        code, d = divmod(code, r)
        out.append(d)
    return out


def decode_interaction(code: int, ts: int, event_id: str, types: Sequence[str] = EVENT_TYPES,
                       items: Sequence[str] = ITEMS) -> Interaction:
    etype_i, user_i, sess_i, item_i, rating_i, mask, device_i, country_i = _digits(
        code, len(types), len(USERS), len(SESSIONS), len(items), len(RATINGS), 1 << len(items),
        len(DEVICES), len(COUNTRIES))
    etype, user, sess = types[etype_i], USERS[user_i], SESSIONS[sess_i]
    context = {k: v for k, v in (("device", DEVICES[device_i]),
                                 ("country", COUNTRIES[country_i])) if v is not None}
    if etype == "impression":
        shown = tuple(i for b, i in enumerate(items) if mask >> b & 1)[:4] or (items[item_i],)
        return Interaction(event_id, etype, user, sess, ts, item_ids=shown, context=context)
    value = RATINGS[rating_i] if etype == "rating" else None
    return Interaction(event_id, etype, user, sess, ts, item_id=items[item_i], value=value,
                       context=context)


def decode_upsert(code: int, ts: int, item: str | None = None,
                  category: str | EllipsisType | None = ...) -> ItemUpsert:
    item_i, cat_i, price_i, stock_i, tags_i = _digits(
        code, len(ITEMS), len(CATEGORIES) + 1, 4, 7, 4)
    item_id = ITEMS[item_i] if item is None else item
    cat = (None, *CATEGORIES)[cat_i] if category is ... else category
    price = (None, 0.0, 9.99, 120.5)[price_i]
    stock = None if stock_i == 6 else stock_i
    tags = (("new",), ("sale",), ("new", "eco"), ())[tags_i]
    return ItemUpsert(item_id, ts, title=f"title {item_id}", category=cat, price=price,
                      stock=stock, tags=tags)


CODES = st.integers(0, 2**40)


def interactions(ts: int | None = None, event_id: str = "e", types: Sequence[str] = EVENT_TYPES,
                 items: Sequence[str] = ITEMS, span: int = 2 * DAY
                 ) -> st.SearchStrategy[Interaction]:
    """One valid interaction (an impression carries ``item_ids``, everything else ``item_id``).

    Without ``ts`` the event time is drawn from ``[T0, T0 + span]``.
    """
    times = st.just(ts) if ts is not None else st.integers(T0, T0 + span)
    return st.builds(lambda c, t: decode_interaction(c, t, event_id, types, items), CODES, times)


def upserts(ts: int | None = None, item: str | None = None,
            category: str | EllipsisType | None = ..., span: int = 2 * DAY
            ) -> st.SearchStrategy[ItemUpsert]:
    """One upsert; ``category=...`` draws it (possibly none), anything else is used as is."""
    times = st.just(ts) if ts is not None else st.integers(T0, T0 + span)
    return st.builds(lambda c, t: decode_upsert(c, t, item, category), CODES, times)


def build_log(codes: Sequence[int], cats: dict[str, str | None], *, upsert_rate: float = 0.15,
              steps: Sequence[int] = SHORT_STEPS, fixed_categories: bool = True,
              catalogue_first: bool = False) -> list[Record]:
    """Decode one integer per record into a log (see :func:`logs`)."""
    out: list[Record] = []
    if catalogue_first:
        out.extend(ItemUpsert(i, T0, title=i, category=cats[i]) for i in ITEMS)
    slots = 0 if catalogue_first else round(upsert_rate * KIND_SLOTS)
    ts = T0
    for k, code in enumerate(codes):
        step_i, kind, back_i, rest = (*_digits(code, len(steps), KIND_SLOTS, len(BACKDATES)),
                                      code // (len(steps) * KIND_SLOTS * len(BACKDATES)))
        ts += steps[step_i]
        if kind >= KIND_SLOTS - slots:  # high kinds are upserts, so 0 shrinks to a view
            item = ITEMS[rest % len(ITEMS)]
            cat = cats[item] if fixed_categories else ...
            out.append(decode_upsert(rest, ts - BACKDATES[back_i], item, cat))
        else:
            out.append(decode_interaction(rest, ts, f"e{k}"))
    return out


@st.composite
def logs(draw: st.DrawFn, min_size: int = 0, max_size: int = 60, *, upsert_rate: float = 0.15,
         steps: Sequence[int] = SHORT_STEPS, fixed_categories: bool = True,
         catalogue_first: bool = False, categories: Sequence[str] = CATEGORIES) -> list[Record]:
    """A log of interactions and item upserts, event time non-decreasing in log order.

    With ``fixed_categories`` every item keeps one category (or none) for the whole log, so the
    "current category" of an item does not depend on which upsert is newest. Upserts may carry an
    event time older than their log position (a late catalogue correction). ``catalogue_first``
    puts one upsert per item before every interaction, as ``recs replay`` does. Items get their
    category from ``categories`` (fewer categories: fuller per-category lists).
    """
    cat_codes = draw(st.lists(st.integers(0, len(categories)), min_size=len(ITEMS),
                              max_size=len(ITEMS)))
    cats = {i: (None, *categories)[c] for i, c in zip(ITEMS, cat_codes, strict=True)}
    size = draw(st.integers(min_size, max_size))  # st.lists alone averages a handful of items
    # one byte-string draw for the whole log: 5 bytes (40 bits) per record
    raw = draw(st.binary(min_size=5 * size, max_size=5 * size))
    codes = [int.from_bytes(raw[k:k + 5], "little") for k in range(0, len(raw), 5)]
    return build_log(codes, cats, upsert_rate=upsert_rate, steps=steps,
                     fixed_categories=fixed_categories, catalogue_first=catalogue_first)


@dataclass(frozen=True)
class RandomLog:
    """A seeded, non-Hypothesis log generator for the larger fixed-seed tests."""

    seed: int
    size: int = 400
    steps: Sequence[int] = SHORT_STEPS
    categories: dict[str, str | None] = field(default_factory=dict)

    def build(self) -> list[Record]:
        rnd = random.Random(self.seed)
        cats = self.categories or {i: rnd.choice((None, *CATEGORIES)) for i in ITEMS}
        out: list[Record] = [ItemUpsert(i, T0, title=i, category=cats[i]) for i in ITEMS]
        ts = T0
        for k in range(self.size):
            ts += rnd.choice(self.steps)
            etype = rnd.choice(EVENT_TYPES)
            user, sess = rnd.choice(USERS), rnd.choice(SESSIONS)
            context = {k: v for k, v in (("device", rnd.choice(DEVICES)),
                                         ("country", rnd.choice(COUNTRIES))) if v is not None}
            if etype == "impression":
                shown = tuple(rnd.sample(ITEMS, rnd.randint(1, 4)))
                out.append(Interaction(f"e{k}", etype, user, sess, ts, item_ids=shown))
            else:
                value = rnd.choice((0.0, 2.5, 5.0, 10.0)) if etype == "rating" else None
                out.append(Interaction(f"e{k}", etype, user, sess, ts,
                                       item_id=rnd.choice(ITEMS), value=value, context=context))
        return out


# -- brute-force references -------------------------------------------------------------------

def naive_weight(etype: str, value: float | None) -> float:
    """Interest weight of one event, as documented in ``operators/config.py``."""
    if etype == "rating" and value is not None:
        return DEFAULT_EVENT_WEIGHTS["rating"] * max(value, 0.0) / 5.0
    return DEFAULT_EVENT_WEIGHTS.get(etype, 0.0)


def naive_log_sum(terms: Iterable[tuple[float, int]], half_life_s: float) -> float:
    """``log Σ w·exp(λ·t)`` over ``(w, ts_ms)`` with ``w > 0``, by ``fsum`` after a max-shift."""
    lam = math.log(2.0) / half_life_s
    logs_ = [math.log(w) + lam * (ts / 1000.0) for w, ts in terms if w > 0]
    if not logs_:
        return float("-inf")
    top = max(logs_)
    return top + math.log(math.fsum(math.exp(x - top) for x in logs_))


def naive_popularity(log: Iterable[Record], cfg: EngineConfig) -> dict[str, float]:
    """Per-item forward-decayed popularity ``log_pop`` recomputed from the whole log.

    Only items with at least one positive-weight interaction appear. Impressions weigh 0.
    """
    terms: dict[str, list[tuple[float, int]]] = defaultdict(list)
    for rec in log:
        if isinstance(rec, Interaction) and rec.item_id is not None:
            terms[rec.item_id].append((naive_weight(rec.type, rec.value), rec.ts))
    out = {}
    for item, ts_terms in terms.items():
        score = naive_log_sum(ts_terms, cfg.trending.half_life_s)
        if score != float("-inf"):
            out[item] = score
    return out


def naive_context_scopes(event: Interaction) -> list[str]:
    """Context trending scopes of one event, from ``operators/trending.py``'s docstring: device
    and country stripped and lower-cased when 1..64 characters long, daypart by UTC hour."""
    out = []
    for dimension in ("device", "country"):
        raw = event.context.get(dimension)
        value = raw.strip().lower() if isinstance(raw, str) else ""
        if 1 <= len(value) <= 64:
            out.append(f"ctx:{dimension}:{value}")
    hour = datetime.fromtimestamp(event.ts / 1000, tz=UTC).hour
    part = ("night" if hour < 6 else "morning" if hour < 12 else "afternoon" if hour < 18
            else "evening")
    return [*out, f"ctx:daypart:{part}"]


def naive_context_popularity(log: Iterable[Record], cfg: EngineConfig
                             ) -> dict[str, dict[str, float]]:
    """``scope -> {item: log Σ w·exp(λ t)}`` over the positive-weight interactions of each item
    in each context scope, recomputed from the whole log (no bound on scopes per item)."""
    terms: dict[tuple[str, str], list[tuple[float, int]]] = defaultdict(list)
    for rec in log:
        if isinstance(rec, Interaction) and rec.item_id is not None:
            weight = naive_weight(rec.type, rec.value)
            for scope in naive_context_scopes(rec) if weight > 0 else ():
                terms[(scope, rec.item_id)].append((weight, rec.ts))
    out: dict[str, dict[str, float]] = defaultdict(dict)
    for (scope, item), ts_terms in terms.items():
        out[scope][item] = naive_log_sum(ts_terms, cfg.trending.half_life_s)
    return dict(out)


def naive_categories(log: Iterable[Record]) -> dict[str, str | None]:
    """Category of each upserted item: that of its newest upsert (ties: the later in the log)."""
    best: dict[str, ItemUpsert] = {}
    for rec in log:
        if isinstance(rec, ItemUpsert) and (rec.item_id not in best
                                            or rec.ts >= best[rec.item_id].ts):
            best[rec.item_id] = rec
    return {item: up.category for item, up in best.items()}


def naive_first_seen(log: Iterable[Record]) -> dict[str, int]:
    """Each upserted item's first-seen time: its oldest upsert's ``ts`` (``operators/arrivals.py``),
    whatever order the upserts come in."""
    out: dict[str, int] = {}
    for rec in log:
        if isinstance(rec, ItemUpsert):
            out[rec.item_id] = min(rec.ts, out.get(rec.item_id, rec.ts))
    return out


def naive_new_arrivals(log: Sequence[Record], cfg: EngineConfig) -> dict[str, dict[str, float]]:
    """``scope -> {item: λ·first_seen_s}`` for every live item (its newest upsert, ties: the later
    in the log, is not deleted), in ``new:global`` and in ``new:cat:{category}`` of that upsert."""
    newest: dict[str, ItemUpsert] = {}
    for rec in log:
        if isinstance(rec, ItemUpsert) and (rec.item_id not in newest
                                            or rec.ts >= newest[rec.item_id].ts):
            newest[rec.item_id] = rec
    lam = math.log(2.0) / cfg.trending.half_life_s
    out: dict[str, dict[str, float]] = defaultdict(dict)
    for item, first in naive_first_seen(log).items():
        up = newest[item]
        if up.deleted:
            continue
        out["new:global"][item] = lam * (first / 1000.0)
        if up.category is not None:
            out[f"new:cat:{up.category}"][item] = lam * (first / 1000.0)
    return dict(out)


def naive_new_arrival_versions(log: Sequence[Record]) -> dict[str, int]:
    """``scope -> version`` of the new-arrival lists: the newest upsert applied as its item's
    newest (``ts`` not below every earlier one of the item) that left it live, in the scopes of
    that upsert. Retractions and lowered first-seen times do not move versions."""
    newest: dict[str, int] = {}
    out: dict[str, int] = {}
    for rec in log:
        if not isinstance(rec, ItemUpsert) or rec.ts < newest.get(rec.item_id, rec.ts):
            continue
        newest[rec.item_id] = rec.ts
        if rec.deleted:
            continue
        scopes = ["new:global", *([f"new:cat:{rec.category}"] if rec.category else [])]
        for scope in scopes:
            out[scope] = max(out.get(scope, rec.ts), rec.ts)
    return out


def naive_top_k(scores: dict[str, float], k: int) -> list[tuple[str, float]]:
    return sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))[:k]


def assert_same_top_k(got: Sequence[Sequence[Any]], scores: dict[str, float], k: int,
                      tol: float = 1e-7) -> None:
    """``got`` (``[[item, log_score], ...]``) is the top ``k`` of ``scores`` up to float ties.

    Sums of the same terms in a different order may differ in the last bits, so two items whose
    exact scores tie may swap; everything else must match exactly: same length, every listed
    score within ``tol`` of the recomputed one, listed in non-increasing order, and every item
    clearly above the ``k``-th best score listed.
    """
    want = naive_top_k(scores, k)
    assert len(got) == len(want), (got, want)
    for (item, score), (_, want_score) in zip(got, want, strict=True):
        assert item in scores, f"{item} listed but has no positive-weight event"
        assert math.isclose(score, scores[item], rel_tol=0, abs_tol=tol), (item, score, scores)
        assert math.isclose(score, want_score, rel_tol=0, abs_tol=tol), (got, want)
    listed = [s for _, s in got]
    assert all(a >= b - tol for a, b in pairwise(listed)), got
    if want:
        floor = want[-1][1]
        must = {i for i, s in scores.items() if s > floor + tol}
        assert must <= {i for i, _ in got}, (must, got)


@dataclass
class _NaiveSession:
    session_id: str
    last_ts: int
    items: list[str] = field(default_factory=list)   # every interest event of the session
    basket: list[str] = field(default_factory=list)  # carted/bought items, by last add


def naive_pairs(log: Iterable[Record], cfg: SessionConfig) -> list[Pair]:
    """Every pair the documented co-visitation / co-purchase rules emit, recomputed per event.

    Rules (``operators/session.py``): a session is cut when ``session_id`` changes or after more
    than ``gap_ms`` of inactivity; all user state is forgotten after more than ``ttl_ms``. When the
    user interacts with ``b`` and the last distinct item of the session is not ``b``, every ``a``
    among the last ``pair_window`` distinct items (ordered by last occurrence, ``b`` itself counted
    but skipped) at ``d`` steps back gives ``a -> b`` weight ``1/d`` and ``b -> a`` weight
    ``backward_weight/d``. A carted/bought item pairs both ways with every other item already in
    the session's basket. The basket is not bounded here: keep logs within ``max_basket``.
    Impressions emit nothing; the TTL expiry an impression may cause changes nothing either in
    logs whose event time never decreases (the next interest event would expire the state too).
    """
    users: dict[str, _NaiveSession] = {}
    out: list[Pair] = []
    for rec in log:
        if not isinstance(rec, Interaction) or rec.type not in INTEREST_TYPES:
            continue
        if rec.item_id is None:
            continue
        b, ts = rec.item_id, rec.ts
        cur = users.get(rec.user_id)
        if cur is not None and ts - cur.last_ts > cfg.ttl_ms:
            cur = None
        if cur is None:
            cur = users[rec.user_id] = _NaiveSession(rec.session_id, ts)
        elif rec.session_id != cur.session_id or ts - cur.last_ts > cfg.gap_ms:
            cur.session_id, cur.items, cur.basket = rec.session_id, [], []
        recency: list[str] = []  # distinct items of the session, newest first
        for x in reversed(cur.items):
            if x not in recency:
                recency.append(x)
        if recency and recency[0] != b:
            for d, a in enumerate(recency[:cfg.pair_window], start=1):
                if a != b:
                    out.append(Pair("similar", a, b, 1.0 / d, ts))
                    out.append(Pair("similar", b, a, cfg.backward_weight / d, ts))
        if rec.type in BASKET_TYPES:
            w = cfg.purchase_pair_weight if rec.type == "purchase" else cfg.cart_pair_weight
            for other in cur.basket:
                if other != b:
                    out.append(Pair("bought", other, b, w, ts))
                    out.append(Pair("bought", b, other, w, ts))
            cur.basket = [x for x in cur.basket if x != b] + [b]
        cur.items.append(b)
        cur.last_ts = max(cur.last_ts, ts)
    return out


def naive_neighbour_scores(pairs: Iterable[Pair], half_lives: dict[str, float]
                           ) -> dict[tuple[str, str], dict[str, float]]:
    """``(relation, src) -> {dst: log Σ w·exp(λ t)}`` by exact counting of every pair."""
    terms: dict[tuple[str, str], dict[str, list[tuple[float, int]]]] = defaultdict(
        lambda: defaultdict(list))
    for p in pairs:
        terms[(p.relation, p.src)][p.dst].append((p.weight, p.ts))
    return {key: {dst: naive_log_sum(t, half_lives[key[0]]) for dst, t in per.items()}
            for key, per in terms.items()}


def is_json_plain(value: Any) -> bool:
    """True if ``value`` is made of dict/list/str/int/finite float/bool/None only."""
    if value is None or isinstance(value, str | bool | int):
        return True
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, list):
        return all(is_json_plain(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and is_json_plain(v) for k, v in value.items())
    return False


@dataclass
class NaiveUser:
    """One user's state by the rules of ``operators/session.py``'s docstring."""

    session_id: str
    interest: list[Interaction] = field(default_factory=list)  # since the last TTL expiry
    shown: list[tuple[str, int, int]] = field(default_factory=list)  # newest-shown last
    seq: int = 0
    newest: int = 0


def naive_users(log: Iterable[Record], cfg: SessionConfig) -> dict[str, NaiveUser]:
    """Per user: interest events alive since the last TTL expiry, the shown entries and the
    number of changes since the state last started over, for logs whose event time never
    decreases (so every event is the newest one, and ``shown`` in event-time order is
    simply in the order entries were last updated)."""
    users: dict[str, NaiveUser] = {}
    for rec in log:
        if not isinstance(rec, Interaction):
            continue
        impression = rec.type == "impression"
        if not impression and (rec.type not in INTEREST_TYPES or rec.item_id is None):
            continue
        ts, user = rec.ts, users.get(rec.user_id)
        if user is not None:
            user.shown = [e for e in user.shown if ts - e[2] <= cfg.ttl_ms]
            if user.interest and ts - user.interest[-1].ts > cfg.ttl_ms:
                user.interest = []  # impressions expire the interest part too
            if not user.interest and not user.shown:
                user = None  # nothing alive: start over
        if user is None:
            user = users[rec.user_id] = NaiveUser(rec.session_id)
        if impression:
            for item in dict.fromkeys(rec.item_ids):
                count = next((c for i, c, _ in user.shown if i == item), 0)
                user.shown = [e for e in user.shown if e[0] != item] + [(item, count + 1, ts)]
            user.shown = user.shown[-cfg.max_shown:]
        else:
            user.interest.append(rec)
            user.session_id = rec.session_id
        user.seq += 1
        user.newest = ts
    return users

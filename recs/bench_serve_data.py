"""bench-serve's data and request mix: the synthetic storefront written to Redis as the stream
would write it, the users each request asks for (known, unknown, repeated polls), and each
target's request paths."""

from __future__ import annotations

import dataclasses
import random
import time
from collections.abc import Sequence
from typing import Final
from urllib.parse import quote

from recs.bench_baseline import baseline_path
from schemas.events import Interaction

ENDPOINTS: Final = {
    "homepage": "/v1/users/{user}/recommendations",
    "session": "/v1/users/{user}/session-recommendations",
    "trending": "/v1/trending",
}
BASELINE: Final = "baseline"
UNKNOWN_PREFIX: Final = "bench-unknown-"
MAX_USERS: Final = 20_000  # distinct known users in the rotation
MIN_USERS: Final = 20_000  # the mix asks at least this many users (known and unknown)
REPEAT_WINDOW: Final = 50  # a repeated poll asks a user of the last this many requests
DATA_SOURCE: Final = ("synthetic storefront applied by the in-process ReferenceRunner (the Flink "
                      "job's operators), written with RedisStore; Kafka->Flink is benchmarked by "
                      "`recs bench-stream`")


@dataclasses.dataclass(frozen=True, slots=True)
class Dataset:
    seed: int
    items: int
    users: int
    events: int
    sessions: int
    redis_keys: int
    fill_s: float
    session_users: tuple[str, ...]
    tail: tuple[Interaction, ...] = ()  # the last ``keep`` interactions (applied or held back)


def fill(redis_url: str, *, seed: int, events: int, items: int, users: int,
         keep: int = 0, hold_back: bool = False, similar_recent_s: float = 0.0) -> Dataset:
    """Synthetic storefront -> ReferenceRunner -> RedisStore; event times end now. The online
    models run too (with the stream's settings), so the served path includes the learned
    vector source and, once warm, the ranker. ``similar_recent_s`` > 0: the second
    similar-items list on at that half-life (``recs.bench_serve_simr``)."""
    from operators.config import EngineConfig, recent_similar
    from recs.settings import Settings
    from recs.synthetic import Storefront
    from state.redis_store import RedisStore
    from stream.reference import ReferenceRunner

    started = time.perf_counter()
    shop = Storefront(seed=seed, n_items=items, n_users=users)
    records = [*shop.catalogue(), *shop.stream(events)]
    shift = time.time_ns() // 1_000_000 - max(r.ts for r in records)
    records = [dataclasses.replace(r, ts=r.ts + shift) for r in records]
    store = RedisStore.from_url(redis_url)
    base = EngineConfig()
    cfg = dataclasses.replace(base, mf=dataclasses.replace(
        base.mf, negatives=Settings.from_env().mf_negatives),
        similar_recent=recent_similar(base.similar, similar_recent_s))
    runner = ReferenceRunner(cfg, store=store, models=True)
    inter = [n for n, r in enumerate(records) if isinstance(r, Interaction)][-keep:] \
        if keep else []
    tail = [r for r in (records[n] for n in inter) if isinstance(r, Interaction)]
    if hold_back:  # the last ``keep`` interactions are kept out of Redis
        held = set(inter)
        records = [r for n, r in enumerate(records) if n not in held]
    runner.run(records, flush_every=100_000)
    keys = int(store.client.dbsize())
    store.client.close()
    return Dataset(seed, items, users, runner.events_applied, len(runner.sessions), keys,
                   time.perf_counter() - started, tuple(sorted(runner.sessions)), tuple(tail))


def pick_users(session_users: Sequence[str], *, seed: int, unknown_share: float,
               limit: int = MAX_USERS) -> list[str]:
    """Users with a session (at most ``limit``) and a share of unknown ones, shuffled.

    >>> users = pick_users([f"u{i}" for i in range(90)], seed=1, unknown_share=0.1)
    >>> len(users), sum(u.startswith(UNKNOWN_PREFIX) for u in users)
    (100, 10)
    """
    rnd = random.Random(f"bench-serve:{seed}")
    known = list(session_users)
    rnd.shuffle(known)
    known = known[:limit]
    n_unknown = round(len(known) * unknown_share / (1.0 - unknown_share))
    users = known + [f"{UNKNOWN_PREFIX}{i}" for i in range(n_unknown)]
    rnd.shuffle(users)
    return users


def with_repeats(users: Sequence[str], *, repeat_share: float, seed: int) -> list[str]:
    """The request order: every user once, in order, and ``repeat_share`` of the requests
    asking again a user of the last :data:`REPEAT_WINDOW` requests.

    >>> order = with_repeats([f"u{i}" for i in range(1000)], repeat_share=0.5, seed=1)
    >>> len(set(order)), round(1 - 1000 / len(order), 1)
    (1000, 0.5)
    """
    rnd = random.Random(f"bench-serve-repeats:{seed}")
    out: list[str] = []
    fresh = iter(users)
    while True:
        if out and rnd.random() < repeat_share:
            out.append(out[-1 - rnd.randrange(min(REPEAT_WINDOW, len(out)))])
            continue
        user = next(fresh, None)
        if user is None:
            return out
        out.append(user)


def target_paths(target: str, users: Sequence[str]) -> list[str]:
    """Request paths of a target, one per user (the baseline reads the user's session key)."""
    if target == BASELINE:
        return [baseline_path(quote(u, safe="")) for u in users]
    return [ENDPOINTS[target].format(user=quote(u, safe="")) for u in users]

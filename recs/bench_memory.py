"""Memory benchmark: bytes per user and per item, in Redis and in the job's session state.

    python -m recs.bench_memory [--users 1000000] [--events-per-user 4] [--items 20000]
    make bench-memory

1. **Per user, at ``--users`` users.** Each user gets a short session through the pure session
   operator (``operators/session.py``): views, a cart add and an impression of several items,
   drawn from ``--items`` items by a Zipf law. Their published values (``stream/views.py``)
   are written to an empty Redis (the store's own conditional write, so TTLs are set as in
   production); ``redis_bytes_per_user`` is the growth of Redis' ``used_memory`` over the
   users. ``state_bytes_per_user`` is the session state as the operator's codec encodes it
   (what the Python topology keeps in Flink's keyed state per user); ``jvm`` has what the JVM
   topology keeps per user (``recs.stream.MemoryMain``: its dedup and session states for the
   same number of users, heap bytes and checkpoint bytes).
2. **Per item.** The synthetic storefront through the reference runner (the pure operators,
   every kind of value an item has: item value, neighbour lists, trending entries) into an
   empty Redis; ``redis_bytes_per_item`` is ``MEMORY USAGE`` of every item-keyed value over
   the items that have one, by kind.

The last line is one JSON object with the figures, the counts and ``cpu_count``.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections import Counter
from typing import Any, cast

import orjson

from operators import session
from operators.config import EngineConfig
from recs.benchkit import print_result
from recs.settings import Settings
from schemas.events import Interaction
from state import keys
from state.records import Update
from stream import views

T0 = 1_700_000_000_000


def zipf_items(n_items: int, s: float = 1.0) -> list[float]:
    weights = [1.0 / (rank + 1) ** s for rank in range(n_items)]
    total = sum(weights)
    return [w / total for w in weights]


def user_sessions(n_users: int, per_user: int, n_items: int,
                  seed: int = 5) -> Any:
    """Yield ``(user_id, state)`` after each user's short session."""
    rng = random.Random(seed)
    items = [f"i{k}" for k in range(n_items)]
    cum = zipf_items(n_items)
    cfg = EngineConfig().session
    for u in range(n_users):
        user = f"u{u}"
        state: session.SessionState | None = None
        ts = T0 + u
        picks = rng.choices(items, cum_weights=None, weights=cum, k=per_user + 4)
        for k in range(per_user):
            etype = "add_to_cart" if k == per_user - 1 else "view"
            ev = Interaction(f"e{u}-{k}", etype, user, f"s{u}", ts + k * 1_000,
                             item_id=picks[k])
            state, _ = session.step(state, ev, cfg)
        shown = Interaction(f"e{u}-imp", "impression", user, f"s{u}", ts + per_user * 1_000,
                            item_ids=tuple(picks[per_user:]))
        state, _ = session.step(state, shown, cfg)
        yield user, state


def used_memory(client: Any) -> int:
    return int(cast(dict[str, Any], client.info("memory"))["used_memory"])


def jvm_state(users: int, items: int) -> dict[str, Any]:
    """The JVM job's keyed state per user (``recs.stream.MemoryMain``: the dedup and session
    twins' states for as many users, heap growth and checkpoint bytes)."""
    import subprocess

    from stream.jvm import tool_classpath

    done = subprocess.run(["java", "-Xmx8g", "-cp", tool_classpath(), "recs.stream.MemoryMain",
                           str(users), str(items)], capture_output=True, text=True, check=True)
    return cast(dict[str, Any], orjson.loads(done.stdout.strip().splitlines()[-1]))


def main(argv: list[str] | None = None) -> int:
    from infra.services import Services
    from recs.synthetic import Storefront
    from state.redis_connect import sync_client
    from state.redis_store import RedisStore
    from stream.reference import ReferenceRunner

    parser = argparse.ArgumentParser(prog="python -m recs.bench_memory", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--events-per-user", type=int, default=4)
    parser.add_argument("--items", type=int, default=20_000)
    parser.add_argument("--storefront-events", type=int, default=100_000)
    args = parser.parse_args(argv)

    base = Settings.from_env()
    result: dict[str, Any] = {"users": args.users, "events_per_user": args.events_per_user + 1}
    with Services(base.run_dir / "bench-memory" / "services", settings=base,
                  kafka=False) as svc:
        client = sync_client(svc.redis_url)
        client.flushdb()
        store = RedisStore(client)
        before = used_memory(client)
        started = time.perf_counter()
        batch: list[Update] = []
        state_bytes = 0
        for user, state in user_sessions(args.users, args.events_per_user, args.items):
            state_bytes += len(orjson.dumps(session.encode(state))) if state is not None else 0
            batch.append(views.session_update(user, state, T0))
            if len(batch) == 5_000:
                store.apply(batch)
                batch = []
        store.apply(batch)
        after = used_memory(client)
        result["redis_bytes_per_user"] = round((after - before) / args.users)
        result["state_bytes_per_user"] = round(state_bytes / args.users)
        result["session_keys"] = int(client.dbsize())
        result["users_s"] = round(time.perf_counter() - started, 1)
        result["jvm"] = jvm_state(args.users, args.items)

        client.flushdb()
        runner = ReferenceRunner(store=store)
        shop = Storefront(seed=11, n_items=5_000, n_users=50_000)
        runner.run([*shop.catalogue(T0 - 60_000), *shop.stream(args.storefront_events)])
        by_kind: Counter[str] = Counter()
        items_with: dict[str, set[str]] = {}
        for key in client.scan_iter(match=keys.PREFIX + "*", count=1_000):
            name = key.decode()
            if name.startswith(keys.META_PREFIX):
                continue
            kind, entity = keys.split_key(name)
            if kind in (keys.KIND_SESSION, keys.KIND_TRENDING):
                continue
            by_kind[kind] += int(client.memory_usage(name) or 0)
            items_with.setdefault(kind, set()).add(entity)
        n_items = len(set().union(*items_with.values())) if items_with else 0
        result["items"] = n_items
        result["redis_bytes_per_item"] = round(sum(by_kind.values()) / max(n_items, 1))
        result["redis_bytes_per_item_by_kind"] = {
            kind: round(total / max(len(items_with[kind]), 1))
            for kind, total in sorted(by_kind.items())}
        client.close()
    return print_result(result)


if __name__ == "__main__":
    sys.exit(main())

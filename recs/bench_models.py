"""The online models' cost per event, in one process, without Flink: what caps the topology.

    python -m recs.bench_models [--events 40000] [--negatives 20,10,5,2]

Feeds the stream benchmark's synthetic storefront (5,000 items, 50,000 users; catalogue first)
through what the model operators do per input: parse the event's JSON, route it
(:func:`stream.routing.learns_from`, :func:`ranker_input`), learn it
(:class:`operators.vector_model.VectorModel`), the label join and ranker for impressions and
``rec_id`` engagements, and every ``--tick`` events (the publication interval at the measured
rate) drain the changed vectors and encode their Redis updates as the job does. Figures are CPU
seconds of this process (``time.process_time``), so other work on the machine does not inflate
them; one line of JSON per setting, the machine on the first line.
"""

from __future__ import annotations

import argparse
import dataclasses
import platform
import time
from typing import Any

import orjson

from operators import ranker
from operators.config import EngineConfig
from operators.ranker_state import RankerModel
from operators.vector_model import VectorModel
from recs.synthetic.storefront import Storefront
from schemas.events import interaction_from_canonical
from stream.model_views import publication_updates
from stream.routing import learns_from, ranker_input


def run(cfg: EngineConfig, n_events: int, tick: int) -> dict[str, Any]:
    shop = Storefront(seed=11, n_items=5_000, n_users=50_000)
    model, rk = VectorModel(cfg.mf), RankerModel(cfg.ranker)
    for item in shop.catalogue(1_700_000_000_000):
        model.upsert(item)
        rk.upsert(item)
    bodies = [e.to_json() for e in shop.events(n_events, start_ts=1_700_000_100_000)]
    learns = learns_from(cfg)
    labels: dict[str, ranker.LabelState] = {}
    learn_s = publish_s = 0.0
    published = learned = 0
    start = time.process_time()
    for n, body in enumerate(bodies, 1):
        t0 = time.process_time()
        event = interaction_from_canonical(orjson.loads(body))
        if learns(event):
            model.learn(event)
            learned += 1
        if ranker_input(event):
            state, out = ranker.label_step(labels.get(event.user_id), event, cfg.ranker)
            if state is None:
                labels.pop(event.user_id, None)
            else:
                labels[event.user_id] = state
            rk.observe(out)
        t1 = time.process_time()
        learn_s += t1 - t0
        if n % tick == 0:
            pub = model.drain()
            if pub is not None:
                lines = [u.to_wire() for u in publication_updates(pub)]
                published += len(lines)
            publish_s += time.process_time() - t1
    total = time.process_time() - start
    return {"negatives": cfg.mf.negatives, "events": n_events, "learned": learned,
            "events_per_cpu_s": round(n_events / total),
            "learn_us_per_event": round(1e6 * learn_s / n_events, 1),
            "publish_us_per_event": round(1e6 * publish_s / n_events, 1),
            "updates_published_per_event": round(published / n_events, 2),
            "items": model.mf.n_items, "users": model.mf.n_users}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m recs.bench_models", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--events", type=int, default=40_000)
    p.add_argument("--negatives", default="20,10,5,2")
    p.add_argument("--tick", type=int, default=10_000,
                   help="events between publications (2 s at 5k events/s)")
    args = p.parse_args(argv)
    print(orjson.dumps({"machine": f"{platform.machine()} {platform.python_version()}",
                        "cpu": platform.processor() or "unknown"}).decode())
    base = EngineConfig()
    for neg in (int(x) for x in args.negatives.split(",") if x):
        cfg = dataclasses.replace(base, mf=dataclasses.replace(base.mf, negatives=neg))
        print(orjson.dumps(run(cfg, args.events, args.tick)).decode(), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Publish interactions and item upserts to Kafka: synthetic traffic, log replays, catalogues.

Records are the canonical JSON of :meth:`Interaction.to_json` / :meth:`ItemUpsert.to_json`, keyed
by ``user_id`` (interactions) or ``item_id`` (items), so one user's events stay in order on one
partition and the compacted ``items`` topic keeps the newest upsert per item.

Library use (the demo, the benchmarks and the tests call these)::

    stats = publish(events, bootstrap, "interactions", rate=5000, items_topic="items")
    stats = publish_items(shop.catalogue(), bootstrap, "items")

Command line (``recs produce ...``; every run ends with a one-line JSON summary on stdout)::

    recs produce synthetic --rate 1000 --seconds 30 [--items N --users N --seed S]
    recs produce replay --dataset rsc15 --path ../shared/data/rsc15-sample --speedup 100
    recs produce catalogue [--items N --seed S]

Throughput: kafka-python encodes records in pure Python. Measured here with a local broker on
the same two cores (synthetic events generated, encoded and sent): about 11k events per
CPU-second, 18k with the ``crc32c`` package installed (kafka-python then uses its C CRC instead of
a pure-Python one), against about 70k with ``--client confluent`` (``confluent-kafka``). The
synthetic generator alone makes about 130k events per CPU-second. ``--processes N`` splits the
users over ``N`` processes (by index for synthetic traffic, by a hash of the user id for
replays), each publishing ``1/N`` of the rate, so per-user order is kept.

Modules, one concept each (every public name is importable from ``recs.producer``):

* :mod:`recs.producer.config`: the record type, the client choice and :class:`ProducerConfig`;
* :mod:`recs.producer.senders`: the Kafka clients behind :class:`Sender`, :func:`make_producer`;
* :mod:`recs.producer.pacing`: :class:`TokenBucket`, :func:`replay_paced`, deadlines;
* :mod:`recs.producer.publisher`: :func:`publish`, :func:`publish_items`, :class:`PublishStats`;
* :mod:`recs.producer.jobs`: synthetic and replay jobs, user shards, :func:`run_parallel`;
* :mod:`recs.producer.cli`: ``recs produce`` (:func:`main`).
"""

from __future__ import annotations

from recs.producer.cli import main
from recs.producer.config import (
    CLIENTS,
    DEFAULT_BATCH_SIZE,
    DEFAULT_LINGER_MS,
    ProducerConfig,
    Record,
)
from recs.producer.jobs import (
    ReplayJob,
    SyntheticJob,
    load_replay,
    run_parallel,
    run_replay,
    run_synthetic,
    storefront_for,
    user_shard,
)
from recs.producer.pacing import MIN_SLEEP_S, TokenBucket, replay_paced
from recs.producer.publisher import PublishStats, publish, publish_items
from recs.producer.senders import ConfluentSender, KafkaPythonSender, Sender, make_producer

__all__ = [
    "CLIENTS",
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_LINGER_MS",
    "MIN_SLEEP_S",
    "ConfluentSender",
    "KafkaPythonSender",
    "ProducerConfig",
    "PublishStats",
    "Record",
    "ReplayJob",
    "Sender",
    "SyntheticJob",
    "TokenBucket",
    "load_replay",
    "main",
    "make_producer",
    "publish",
    "publish_items",
    "replay_paced",
    "run_parallel",
    "run_replay",
    "run_synthetic",
    "storefront_for",
    "user_shard",
]

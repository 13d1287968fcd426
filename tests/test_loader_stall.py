"""A Kafka client call that never returns does not stop the loader: the stall watchdog
interrupts it, the loader replaces the consumer, and every update still reaches Redis.

The hang is the one seen in kafka-python 3.0.12 here (``poll`` blocked for minutes inside
``ensure_coordinator_ready`` while the broker answered other clients at once). It cannot be
provoked on demand, so the first consumer is a real one whose ``poll`` blocks the way the real
hang did (an uninterruptible wait, left only by a signal); the second one is a real consumer."""

from __future__ import annotations

import signal
import threading
from typing import Any

import pytest
from kafka import KafkaProducer

from recs.settings import Settings
from state import keys
from state.records import Update
from state.redis_store import RedisStore
from stream import loader

pytestmark = pytest.mark.integration


def _published(settings: Settings, prefix: str, n: int) -> list[Update]:
    """``n`` session updates of users ``{prefix}{i}``, sent to the updates topic."""
    updates = [Update(keys.session_key(f"{prefix}{i}"), i + 1, 1_000 + i, {"n": i})
               for i in range(n)]
    producer = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap)
    for u in updates:
        producer.send(settings.topics.updates, value=u.to_wire())
    producer.flush()
    producer.close()
    return updates


class HangingPoll:
    """A real consumer whose ``poll`` never returns (the first call on)."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.entered = threading.Event()

    def poll(self, timeout_ms: int = 0) -> Any:
        self.entered.set()
        threading.Event().wait()  # forever, like the stalled coordinator lookup

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


def test_a_stalled_consumer_is_replaced_and_nothing_is_lost(
        live_settings: Settings, redis_store: RedisStore) -> None:
    updates = _published(live_settings, "u", 300)
    made: list[Any] = []

    def make_consumer(settings: Settings, group_id: str) -> Any:
        consumer = loader._consumer(settings, group_id)
        made.append(HangingPoll(consumer) if not made else consumer)
        return made[-1]

    # should the watchdog not fire, the hang would last forever: end it after a minute
    # (the loader takes SIGINT as a stop) so the assertions below fail instead
    safety = threading.Timer(60, signal.pthread_kill,
                             (threading.main_thread().ident, signal.SIGINT))
    safety.start()
    try:
        stats = loader.run(live_settings, redis_store, idle_exit_s=3.0, max_seconds=120,
                           stall_s=2.0, make_consumer=make_consumer)
    finally:
        safety.cancel()

    assert made[0].entered.is_set()
    assert stats.consumer_restarts == 1 and len(made) == 2
    assert stats.records == len(updates)
    stored = redis_store.get_many([u.key for u in updates])
    assert [env.data for env in stored if env is not None] == [u.data for u in updates]
    made[0].real.close()


class RefusedCommit:
    """A real consumer whose first commit is refused as kafka-python refuses one while the group
    rebalances."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.refused = 0

    def commit(self) -> None:
        if not self.refused:
            from kafka.errors import RebalanceInProgressError

            self.refused += 1
            raise RebalanceInProgressError("the group is rebalancing")
        self.real.commit()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


def test_a_commit_refused_by_a_rebalance_does_not_stop_the_loader(
        live_settings: Settings, redis_store: RedisStore) -> None:
    updates = _published(live_settings, "r", 50)
    made: list[RefusedCommit] = []

    def make_consumer(settings: Settings, group_id: str) -> Any:
        made.append(RefusedCommit(loader._consumer(settings, group_id)))
        return made[-1]

    stats = loader.run(live_settings, redis_store, group_id="refused-commit", idle_exit_s=3.0,
                       max_seconds=60, make_consumer=make_consumer)
    assert made[0].refused == 1 and stats.consumer_restarts == 0
    stored = redis_store.get_many([u.key for u in updates])
    assert [env.data for env in stored if env is not None] == [u.data for u in updates]
    made[0].real.close()

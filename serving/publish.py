"""Publishing from the server to Kafka: events posted to ``POST /v1/events`` and the
impressions of the server's own answers, both to the ``interactions`` topic, keyed by user.

kafka-python's producer batches in a background thread; ``send`` only appends to its buffer.
:meth:`Publisher.publish` bridges the send futures to asyncio so ``POST /v1/events`` answers 202
only once the broker acknowledged every event (``acks=all``), while impressions are sent without
waiting (a lost impression costs a metric, never a request). The producer is created lazily off
the event loop, so a server whose Kafka is down still starts and serves recommendations.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import Any, Final

log = logging.getLogger("serving")

ACK_TIMEOUT_S: Final = 5.0
RETRY_CONNECT_S: Final = 5.0  # after a failed connect, wait this long before trying again


class PublishUnavailable(ConnectionError):
    """Kafka cannot be reached (now); the caller answers 503."""


class Publisher:
    def __init__(self, bootstrap: str, topic: str, *, client_id: str = "recs-server") -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self.client_id = client_id
        self._producer: Any = None
        self._connecting: asyncio.Future[Any] | None = None
        self._failed_at = 0.0
        self._background: asyncio.Future[None] | None = None
        self.sent = 0
        self.errors = 0

    async def _ensure(self) -> Any:
        if self._producer is not None:
            return self._producer
        if time.monotonic() - self._failed_at < RETRY_CONNECT_S and self._failed_at:
            raise PublishUnavailable(f"kafka at {self.bootstrap} unreachable (retrying soon)")
        if self._connecting is None:
            self._connecting = asyncio.ensure_future(asyncio.to_thread(self._connect))
        try:
            self._producer = await asyncio.shield(self._connecting)
        except Exception as exc:
            self._failed_at = time.monotonic()
            raise PublishUnavailable(f"kafka at {self.bootstrap} unreachable: {exc}") from None
        finally:
            self._connecting = None
        return self._producer

    def _connect(self) -> Any:
        from kafka import KafkaProducer

        return KafkaProducer(bootstrap_servers=self.bootstrap, client_id=self.client_id,
                             acks="all", linger_ms=5, max_block_ms=2000,
                             request_timeout_ms=int(ACK_TIMEOUT_S * 1000))

    async def publish(self, records: Sequence[tuple[bytes, bytes]], *, wait: bool) -> None:
        """Send ``(key, value)`` records; with ``wait``, return once all are acknowledged."""
        producer = await self._ensure()
        loop = asyncio.get_running_loop()
        futures: list[asyncio.Future[None]] = []
        for key, value in records:
            try:
                sent = producer.send(self.topic, key=key, value=value)
            except Exception as exc:  # buffer full, metadata unavailable, closed
                self.errors += 1
                raise PublishUnavailable(f"kafka send failed: {exc}") from None
            if wait:
                fut: asyncio.Future[None] = loop.create_future()
                sent.add_callback(_settle, loop, fut, None)
                sent.add_errback(_settle_error, loop, fut)
                futures.append(fut)
            else:
                sent.add_errback(self._count_error)
        if futures:
            try:
                async with asyncio.timeout(ACK_TIMEOUT_S):
                    await asyncio.gather(*futures)
            except (TimeoutError, Exception) as exc:
                self.errors += 1
                raise PublishUnavailable(f"kafka did not acknowledge: {exc!r}") from None
        self.sent += len(records)

    def publish_nowait(self, records: Sequence[tuple[bytes, bytes]]) -> bool:
        """Send without waiting for anything: ``False`` (records dropped) while the producer
        is not connected yet, in which case a connection attempt starts in the background."""
        producer = self._producer
        if producer is None:
            if self._connecting is None and \
                    time.monotonic() - self._failed_at >= RETRY_CONNECT_S:
                self._background = asyncio.ensure_future(self._try_connect())
            return False
        try:
            for key, value in records:
                producer.send(self.topic, key=key, value=value).add_errback(self._count_error)
        except Exception as exc:  # buffer full, metadata unavailable, closed
            self.errors += 1
            log.debug("serving: impression not sent error=%r", exc)
            return False
        self.sent += len(records)
        return True

    async def _try_connect(self) -> None:
        try:
            await self._ensure()
        except PublishUnavailable as exc:
            log.warning("serving: %s", exc)

    def _count_error(self, exc: BaseException) -> None:
        self.errors += 1
        log.warning("serving: impression not published error=%r", exc)

    async def close(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            await asyncio.to_thread(producer.close, 5)


def _settle(loop: asyncio.AbstractEventLoop, fut: asyncio.Future[None], _value: Any,
            _meta: Any) -> None:
    loop.call_soon_threadsafe(_resolve, fut)


def _resolve(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


def _settle_error(loop: asyncio.AbstractEventLoop, fut: asyncio.Future[None],
                  exc: BaseException) -> None:
    loop.call_soon_threadsafe(_reject, fut, exc)


def _reject(fut: asyncio.Future[None], exc: BaseException) -> None:
    if not fut.done():
        fut.set_exception(exc)

"""A small in-process LRU: the last good answers, re-served (flagged degraded) when Redis is down.

>>> lru: Lru[str, int] = Lru(2)
>>> lru.put("a", 1); lru.put("b", 2); _ = lru.get("a"); lru.put("c", 3)
>>> lru.get("b") is None, lru.get("a"), lru.get("c")
(True, 1, 3)
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class Lru(Generic[K, V]):
    """Bounded mapping that evicts the least recently used entry; not thread-safe (one loop)."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"serving.cache: capacity must be >= 1, got {capacity}")
        self._capacity = capacity
        self._data: OrderedDict[K, V] = OrderedDict()

    def get(self, key: K) -> V | None:
        value = self._data.get(key)
        if value is not None:
            self._data.move_to_end(key)
        return value

    def put(self, key: K, value: V) -> None:
        self._data[key] = value
        self._data.move_to_end(key)
        while len(self._data) > self._capacity:
            self._data.popitem(last=False)

    def __len__(self) -> int:
        return len(self._data)

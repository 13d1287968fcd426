"""Where a Redis Cluster keeps a key, and what a read sends to one slot: pure parts of
:mod:`serving.cluster_reader`, no I/O.

A key's slot is the CRC16 (XMODEM) of the key, or of its hash tag (the text inside its first
``{...}`` when not empty), mod 16384 (:func:`key_slot`, equal to redis-py's ``key_slot``); the
map of which master serves which slot comes from ``CLUSTER SLOTS`` (:func:`parse_slots`); a
read is split per slot (:func:`group_by_slot`), each slot read with one command
(:func:`encode_read`); a ``MOVED`` or ``ASK`` error reply names the node to ask
(:func:`redirect_of`).

>>> group_by_slot(["recs:v1:session:u1", "recs:v1:item:i1", "recs:v1:session:u1"])
{10890: [0, 2], 12445: [1]}
"""

from __future__ import annotations

import binascii
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from serving.redis_client import encode_command

SLOTS: Final = 16384
Address = tuple[str, int]
_REDIRECT: Final = re.compile(r"^(MOVED|ASK) (\d+) (\S*):(\d+)")


def key_slot(key: str | bytes) -> int:
    """The hash slot of ``key``: CRC16 of the key, or of the text inside its first ``{...}``
    when that is not empty, mod 16384 (the Redis Cluster specification).

    >>> key_slot("foo"), key_slot("{user1000}.following"), key_slot("{user1000}.followers")
    (12182, 3443, 3443)
    >>> key_slot("recs:v1:session:u1"), key_slot("foo{}{bar}") == key_slot("foo{}{bar}x")
    (10890, False)
    """
    raw = key.encode() if isinstance(key, str) else key
    start = raw.find(b"{")
    if start >= 0:
        end = raw.find(b"}", start + 1)
        if end > start + 1:
            raw = raw[start + 1:end]
    return binascii.crc_hqx(raw, 0) & (SLOTS - 1)


def group_by_slot(keys: Sequence[str]) -> dict[int, list[int]]:
    """The positions of ``keys`` per slot, slots in order of first appearance."""
    groups: dict[int, list[int]] = {}
    for n, key in enumerate(keys):
        slot = binascii.crc_hqx(key.encode(), 0) & (SLOTS - 1) if "{" not in key \
            else key_slot(key)
        found = groups.get(slot)
        if found is None:
            groups[slot] = [n]
        else:
            found.append(n)
    return groups


@dataclass(frozen=True, slots=True)
class SlotMap:
    """Who serves each slot: ``owners[slot]`` indexes ``masters`` (``-1``: nobody);
    ``replicas`` are every other node the map names (asked for a map when masters fail)."""

    owners: tuple[int, ...]
    masters: tuple[Address, ...]
    replicas: tuple[Address, ...]

    def owner(self, slot: int) -> Address | None:
        at = self.owners[slot]
        return self.masters[at] if at >= 0 else None


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def parse_slots(reply: Any, asked: Address) -> SlotMap:
    """A ``CLUSTER SLOTS`` reply (``[[start, end, [host, port, id, ...], replica...], ...]``)
    as a :class:`SlotMap`; an empty host means the node that was ``asked``.

    >>> m = parse_slots([[0, 5460, [b"127.0.0.1", 7000, b"a"], [b"127.0.0.1", 7003, b"d"]],
    ...                  [5461, 16383, [b"", 7001, b"b"]]], ("127.0.0.1", 7001))
    >>> m.owner(0), m.owner(16383)
    (('127.0.0.1', 7000), ('127.0.0.1', 7001))
    >>> m.masters, m.replicas
    ((('127.0.0.1', 7000), ('127.0.0.1', 7001)), (('127.0.0.1', 7003),))
    >>> parse_slots([[0, 10, [b"h"]]], ("h", 1))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: serving.cluster_reader: CLUSTER SLOTS entry must be [start, end, ...], got [0, ...
    """
    owners = [-1] * SLOTS
    masters: list[Address] = []
    replicas: list[Address] = []
    for entry in reply:
        try:
            start, end = int(entry[0]), int(entry[1])
            nodes = [(_text(n[0]) or asked[0], int(n[1])) for n in entry[2:]]
            if not nodes or not 0 <= start <= end < SLOTS:
                raise ValueError("no node or slots out of range")
        except (TypeError, ValueError, IndexError) as exc:
            raise ValueError(f"serving.cluster_reader: CLUSTER SLOTS entry must be [start, end, "
                             f"[host, port, ...], ...], got {entry!r:.200}") from exc
        if nodes[0] not in masters:
            masters.append(nodes[0])
        at = masters.index(nodes[0])
        owners[start:end + 1] = [at] * (end - start + 1)
        replicas += [n for n in nodes[1:] if n not in replicas]
    return SlotMap(tuple(owners), tuple(masters), tuple(r for r in replicas if r not in masters))


def redirect_of(reply: str) -> tuple[str, int, Address] | None:
    """``("MOVED" | "ASK", slot, (host, port))`` when an error reply is a redirection.

    >>> redirect_of("MOVED 3999 127.0.0.1:6381")
    ('MOVED', 3999, ('127.0.0.1', 6381))
    >>> redirect_of("ERR wrong") is None
    True
    """
    match = _REDIRECT.match(reply)
    if match is None:
        return None
    return match[1], int(match[2]), (match[3], int(match[4]))


def read_command(keys: Sequence[str], at: Sequence[int]) -> tuple[str | bytes, ...]:
    """The read of ``keys[n] for n in at`` (one slot): ``GET`` for one key, else ``MGET``."""
    return ("GET", keys[at[0]]) if len(at) == 1 else ("MGET", *(keys[n] for n in at))


def encode_read(keys: Sequence[str], at: Sequence[int]) -> bytes:
    """:func:`read_command` in RESP; one key (most slots of a read) without the general
    encoder's loop.

    >>> ks = ["a", "bc"]
    >>> [encode_read(ks, at) == encode_command(read_command(ks, at)) for at in ([1], [0, 1])]
    [True, True]
    """
    if len(at) == 1:
        raw = keys[at[0]].encode()
        return b"*2\r\n$3\r\nGET\r\n$%d\r\n%s\r\n" % (len(raw), raw)
    return encode_command(("MGET", *(keys[n] for n in at)))

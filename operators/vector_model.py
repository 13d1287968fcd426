"""The stream's collaborative model: :class:`OnlineMF` plus content placement plus publication.

:class:`VectorModel` is what the model operator of the topology (``stream/models.py``) and the
reference runner hold. It learns every interaction (:meth:`VectorModel.learn`), places new
catalogue items by their content (:meth:`VectorModel.upsert`, :mod:`operators.content`), and
remembers which user and item vectors changed since the last :meth:`VectorModel.drain`, which
returns them (evicted ones as ``None``) with the model header, for ``stream.views`` to publish.

The **model version** is the number of SGD updates plus the number of content placements: it
grows with every change of any vector, so it versions every published vector (a replay from a
snapshot reaches the same versions, which keeps the Redis writes idempotent).

Snapshot (:meth:`VectorModel.snapshot`): one JSON line (format, version, the side state: content
index, pending changes, counters), then the :mod:`operators.mf_codec` snapshot of the model.

>>> from schemas.events import Interaction, ItemUpsert
>>> from operators.mf_config import MFConfig
>>> m = VectorModel(MFConfig(n_factors=2, negatives=1))
>>> for t, (u, i) in enumerate([("a", "x"), ("b", "y")]):
...     placed = m.upsert(ItemUpsert(i, t, title=f"mug {i}", category="mugs"))
...     _ = m.learn(Interaction(f"e{t}", "click", u, "s", t, item_id=i))
>>> m.upsert(ItemUpsert("new", 5, title="A mug", category="mugs"))  # placed among x and y
True
>>> pub = m.drain()
>>> [(i, src) for i, _, _, src in pub.items], [(u, n) for u, _, _, n in pub.users], pub.version
([('new', 'content'), ('x', 'cf'), ('y', 'cf')], [('a', 1), ('b', 1)], 4)
>>> m.drain() is None  # nothing changed since
True
>>> VectorModel.restore(m.snapshot()).snapshot() == m.snapshot()
True
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

import orjson

from operators import mf_codec
from operators.content import ContentIndex
from operators.mf_config import MFConfig
from operators.online_mf import Learned, OnlineMF
from schemas.events import Interaction, ItemUpsert

FORMAT: Final = "recs.vector_model"
FORMAT_VERSION: Final = 1
CF: Final = "cf"
CONTENT: Final = "content"

ItemVec = tuple[str, tuple[float, ...] | None, float, str]  # item, vector (None: gone), bias, src
UserVec = tuple[str, tuple[float, ...] | None, float, int]  # ..., events learned from the user


@dataclass(frozen=True, slots=True)
class Publication:
    items: list[ItemVec]   # sorted by id
    users: list[UserVec]   # sorted by id
    header: dict[str, Any]
    version: int
    as_of: int             # newest event time the model has seen


class VectorModel:
    def __init__(self, cfg: MFConfig | None = None, content: ContentIndex | None = None) -> None:
        self.mf = OnlineMF(cfg)
        self.content = content if content is not None else ContentIndex()
        self.as_of = 0
        self.placed = 0                  # content placements (part of the version)
        self._content_src: set[str] = set()  # items whose vector is still their placement
        self._items: dict[str, None] = {}    # changed since the last drain
        self._users: dict[str, None] = {}
        self.user_events: dict[str, int] = {}  # events learned per user (the model's users)
        self.sampled_out = 0  # events its feed skipped because it could not keep up
        self._header_changed = False  # sampled_out moved since the last drain

    @property
    def version(self) -> int:
        return self.mf.updates + self.placed

    def learn(self, event: Interaction) -> Learned:
        self.as_of = max(self.as_of, event.ts)
        out = self.mf.learn(event)
        if out.updates:
            self._users[event.user_id] = None
            self.user_events[event.user_id] = self.user_events.get(event.user_id, 0) + 1
            for item in (*out.items, *out.evicted_items):
                self._items[item] = None
                self._content_src.discard(item)
            for user in out.evicted_users:
                self._users[user] = None
                self.user_events.pop(user, None)
        return out

    def skip(self, n: int) -> None:
        """Count ``n`` events the model's feed left out by sampling (stream/models.py)."""
        if n:
            self.sampled_out += n
            self._header_changed = True

    def upsert(self, item: ItemUpsert) -> bool:
        """Index a catalogue record; a deleted item leaves the content index (its learned
        vector stays until evicted: the server's rules filter deleted items). Returns True
        when the item was new to the model and got a content placement."""
        self.as_of = max(self.as_of, item.ts)
        if item.deleted:
            self.content.upsert(item.item_id, {})
            return False
        self.content.upsert(item.item_id, item.to_dict())
        if self.mf.item_vector(item.item_id) is not None:
            return False
        place = self.content.place(item.item_id, self._lookup)
        if place is None or not self.mf.seed_item(item.item_id, place.vector, place.bias):
            return False
        self.placed += 1
        self._content_src.add(item.item_id)
        self._items[item.item_id] = None
        return True

    def _lookup(self, item: str) -> tuple[Any, float] | None:
        vec = self.mf.item_vector(item)
        return None if vec is None else (vec, self.mf.item_bias(item))

    def header(self) -> dict[str, Any]:
        cfg = self.mf.cfg
        return {"name": "mf", "version": self.version, "dim": cfg.n_factors,
                "items": self.mf.n_items, "users": self.mf.n_users, "events": self.mf.events,
                "updates": self.mf.updates, "placed": self.placed,
                "content_items": len(self._content_src), "as_of": self.as_of,
                "sampled_out": self.sampled_out,
                "mode": cfg.mode, "negatives": cfg.negatives}

    def drain(self) -> Publication | None:
        """The vectors changed since the previous drain (current values), or None."""
        if not self._items and not self._users and not self._header_changed:
            return None
        self._header_changed = False
        items: list[ItemVec] = []
        for item in sorted(self._items):
            vec = self.mf.item_vector(item)
            src = CONTENT if item in self._content_src else CF
            items.append((item, None if vec is None else tuple(vec.tolist()),
                          self.mf.item_bias(item), src))
        users: list[UserVec] = []
        for user in sorted(self._users):
            uvec = self.mf.user_vector(user)
            users.append((user, None if uvec is None else tuple(uvec.tolist()),
                          self.mf.user_bias(user), self.user_events.get(user, 0)))
        self._items.clear()
        self._users.clear()
        return Publication(items, users, self.header(), self.version, self.as_of)

    def snapshot(self) -> bytes:
        side = {"format": FORMAT, "version": FORMAT_VERSION, "as_of": self.as_of,
                "placed": self.placed, "content_src": sorted(self._content_src),
                "pending_items": list(self._items), "pending_users": list(self._users),
                "user_events": list(self.user_events.items()),
                "sampled_out": self.sampled_out,
                "content": self.content.encode()}
        return orjson.dumps(side) + b"\n" + mf_codec.snapshot(self.mf)

    @classmethod
    def restore(cls, data: bytes) -> VectorModel:
        end = data.find(b"\n")
        side = orjson.loads(data[:end]) if end > 0 else None
        if not isinstance(side, dict) or side.get("format") != FORMAT or \
                side.get("version") != FORMAT_VERSION:
            got = side.get("format") if isinstance(side, dict) else data[:40]
            raise mf_codec.SnapshotError("format", f"expected {FORMAT!r} version "
                                         f"{FORMAT_VERSION}", got)
        mf = mf_codec.restore(data[end + 1:])
        model = cls(mf.cfg, ContentIndex.decode(side["content"]))
        model.mf = mf
        model.as_of, model.placed = int(side["as_of"]), int(side["placed"])
        model._content_src = set(side["content_src"])
        model._items = dict.fromkeys(side["pending_items"])
        model._users = dict.fromkeys(side["pending_users"])
        model.user_events = {str(u): int(n) for u, n in side["user_events"]}
        model.sampled_out = int(side.get("sampled_out", 0))
        return model

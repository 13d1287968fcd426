"""The stream's ranker: :class:`operators.ranker.Ranker` plus the catalogue its features read.

The ranker's features use the item's category, price and age (``first_seen_ms``), which the
server reads from the catalogue in Redis. The model operator of the topology sees the same
catalogue stream, so :class:`RankerModel` keeps those three fields per item (the most recently
upserted ``max_items``, LRU) and passes them to :meth:`Ranker.observe`: the model learns from
the features it will be asked about. ``first_seen_ms`` is the earliest upsert time seen, as in
:mod:`operators.trending`.

>>> from schemas.events import Interaction, ItemUpsert
>>> from operators.ranker import label_step
>>> m = RankerModel()
>>> m.upsert(ItemUpsert("a", 5, category="Mugs", price=12.0))
>>> m.meta["a"]
{'category': 'Mugs', 'price': 12.0, 'first_seen_ms': 5}
>>> shown = Interaction("e1", "impression", "u", "s", 10, item_ids=("a",), rec_id="r")
>>> st, labels = label_step(None, shown, m.ranker.cfg)
>>> m.observe(labels), m.version  # nothing closed yet
([], 0)
>>> RankerModel.restore(m.snapshot()).meta == m.meta
True
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Final

import orjson

from operators.ranker import Labels, Ranker, RankerConfig
from schemas.events import ItemUpsert

FORMAT: Final = "recs.ranker_state"
FORMAT_VERSION: Final = 1


class RankerModel:
    def __init__(self, cfg: RankerConfig | None = None, *, max_items: int = 1_000_000) -> None:
        self.ranker = Ranker(cfg)
        self.max_items = max_items
        self.meta: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self.as_of = 0
        self.changed = False  # learned since the last publication

    @property
    def version(self) -> int:
        """Examples learned: grows with every change of the weights."""
        return self.ranker.positives + self.ranker.negatives

    def upsert(self, item: ItemUpsert) -> None:
        self.as_of = max(self.as_of, item.ts)
        old = self.meta.pop(item.item_id, None)
        first = item.ts if old is None else min(int(old["first_seen_ms"]), item.ts)
        self.meta[item.item_id] = {"category": item.category, "price": item.price,
                                   "first_seen_ms": first}
        while len(self.meta) > self.max_items:
            self.meta.popitem(last=False)

    def observe(self, labels: Labels) -> list[float]:
        """Learn one labelling step's examples (prequential predictions returned)."""
        for ex in labels.examples:
            self.as_of = max(self.as_of, ex.label_ts)
        if labels.examples or labels.ignored is not None:
            self.changed = True
        return self.ranker.observe(labels, self.meta)

    def publication(self) -> dict[str, Any]:
        """The ranker's snapshot (what the server restores), with the event time it reflects."""
        self.changed = False
        return {**self.ranker.snapshot(), "as_of": self.as_of}

    def snapshot(self) -> bytes:
        return orjson.dumps({"format": FORMAT, "version": FORMAT_VERSION, "as_of": self.as_of,
                             "changed": self.changed, "max_items": self.max_items,
                             "meta": list(self.meta.items()), "ranker": self.ranker.snapshot()})

    @classmethod
    def restore(cls, data: bytes) -> RankerModel:
        doc = orjson.loads(data)
        if doc.get("format") != FORMAT or doc.get("version") != FORMAT_VERSION:
            raise ValueError(f"operators.ranker_state: format/version {doc.get('format')!r}/"
                             f"{doc.get('version')!r}, expected {FORMAT!r}/{FORMAT_VERSION}")
        model = cls(max_items=int(doc["max_items"]))
        model.ranker = Ranker.restore(doc["ranker"])
        model.meta = OrderedDict((str(k), dict(v)) for k, v in doc["meta"])
        model.as_of, model.changed = int(doc["as_of"]), bool(doc["changed"])
        return model

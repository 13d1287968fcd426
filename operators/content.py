"""Content placement for new items: a catalogue upsert becomes a vector in the learned space.

A collaborative vector needs interactions; a new item has none. :class:`ContentIndex` keeps the
content tokens of every catalogue item (category, brand, the words of the title, a price band)
and an inverted index from token to the items that carry it. :meth:`ContentIndex.place` scores
the items sharing a token with the new one (the sum of the shared tokens' weights:
:data:`TOKEN_WEIGHTS`, so the same category and brand count more than a shared title word) and
returns the score-weighted mean of the learned vectors and biases of the best ``neighbours``
among those the model knows. The caller seeds the model with it
(:meth:`operators.online_mf.OnlineMF.seed_item`) and publishes it with ``src: content``: the
item is retrievable at the next publication, and its first interactions refine that vector.

Hashing the tokens would bound the vocabulary but not the postings, so the postings themselves
are bounded instead: each token keeps its ``max_postings`` newest items, and the index keeps the
``max_items`` most recently upserted items (LRU). Pure: no I/O, no clock.

>>> idx = ContentIndex()
>>> for item, cat in (("a", "mugs"), ("b", "mugs"), ("c", "tea")):
...     idx.upsert(item, {"title": f"{cat} {item}", "category": cat, "brand": "acme"})
>>> vectors = {"a": ([1.0, 0.0], 0.2), "b": ([0.0, 1.0], 0.0), "c": ([-1.0, -1.0], 0.0)}
>>> idx.upsert("n", {"title": "Blue mugs", "category": "mugs"})
>>> idx.place("n", vectors.get)
Placement(vector=(0.5, 0.5), bias=0.1, neighbours=('a', 'b'))
"""

from __future__ import annotations

import math
import re
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

TOKEN_WEIGHTS: Final = {"cat": 3.0, "brand": 2.0, "price": 0.5, "word": 1.0}
MAX_TITLE_WORDS: Final = 20
_WORD: Final = re.compile(r"[^\W_]{2,}")

Lookup = Callable[[str], "tuple[Sequence[float], float] | None"]


@dataclass(frozen=True, slots=True)
class Placement:
    vector: tuple[float, ...]
    bias: float
    neighbours: tuple[str, ...]  # the items it was placed among, best first


def tokens(meta: Mapping[str, Any]) -> tuple[str, ...]:
    """The content tokens of one catalogue record, distinct, in a stable order.

    >>> tokens({"title": "The Red Mug, red!", "category": "Mugs", "brand": "Acme", "price": 12})
    ('cat:mugs', 'brand:acme', 'price:3', 'word:the', 'word:red', 'word:mug')
    """
    out: dict[str, None] = {}
    for field_name, kind in (("category", "cat"), ("brand", "brand")):
        value = meta.get(field_name)
        if isinstance(value, str) and value.strip():
            out[f"{kind}:{value.strip().lower()}"] = None
    price = meta.get("price")
    if isinstance(price, int | float) and math.isfinite(price) and price > 0:
        out[f"price:{int(math.log2(price + 1))}"] = None  # bands double in width
    title = meta.get("title")
    if isinstance(title, str):
        for word in _WORD.findall(title.lower())[:MAX_TITLE_WORDS]:
            out[f"word:{word}"] = None
    return tuple(out)


def _weight(token: str) -> float:
    return TOKEN_WEIGHTS[token.partition(":")[0]]


class ContentIndex:
    """Tokens per item and postings per token, both bounded (see the module docstring)."""

    def __init__(self, *, max_items: int = 1_000_000, max_postings: int = 200,
                 neighbours: int = 10) -> None:
        if min(max_items, max_postings, neighbours) < 1:
            raise ValueError("operators.content: max_items, max_postings and neighbours must "
                             f"be >= 1, got {max_items!r}, {max_postings!r}, {neighbours!r}")
        self.max_items, self.max_postings, self.neighbours = max_items, max_postings, neighbours
        self._tokens: OrderedDict[str, tuple[str, ...]] = OrderedDict()  # LRU by upsert
        self._postings: dict[str, OrderedDict[str, None]] = {}           # newest last

    def __len__(self) -> int:
        return len(self._tokens)

    def upsert(self, item: str, meta: Mapping[str, Any]) -> None:
        self._unlink(item)
        toks = tokens(meta)
        self._tokens[item] = toks
        for tok in toks:
            post = self._postings.setdefault(tok, OrderedDict())
            post[item] = None
            if len(post) > self.max_postings:
                post.popitem(last=False)
        while len(self._tokens) > self.max_items:
            self._unlink(next(iter(self._tokens)))

    def _unlink(self, item: str) -> None:
        for tok in self._tokens.pop(item, ()):
            post = self._postings.get(tok)
            if post is not None:
                post.pop(item, None)
                if not post:
                    del self._postings[tok]

    def place(self, item: str, lookup: Lookup) -> Placement | None:
        """Where ``item`` goes among the items ``lookup`` knows a vector and bias for; ``None``
        when it shares no token with any of them (then it waits for interactions)."""
        scores: dict[str, float] = {}
        for tok in self._tokens.get(item, ()):
            w = _weight(tok)
            for other in self._postings.get(tok, ()):
                if other != item:
                    scores[other] = scores.get(other, 0.0) + w
        found: list[tuple[str, float, Sequence[float], float]] = []
        for other, score in sorted(scores.items(), key=lambda kv: (-kv[1], kv[0])):
            known = lookup(other)
            if known is not None:
                found.append((other, score, known[0], known[1]))
                if len(found) == self.neighbours:
                    break
        if not found:
            return None
        total = sum(score for _, score, _, _ in found)
        dim = len(found[0][2])
        vector = [sum(score * vec[d] for _, score, vec, _ in found) / total for d in range(dim)]
        bias = sum(score * b for _, score, _, b in found) / total
        return Placement(tuple(round(v, 12) for v in vector), round(bias, 12),
                         tuple(o for o, _, _, _ in found))

    def encode(self) -> dict[str, Any]:
        """Plain JSON, both orders kept (LRU of items, newest-last postings)."""
        return {"max_items": self.max_items, "max_postings": self.max_postings,
                "neighbours": self.neighbours,
                "items": [[item, list(toks)] for item, toks in self._tokens.items()],
                "postings": {tok: list(post) for tok, post in self._postings.items()}}

    @classmethod
    def decode(cls, doc: Mapping[str, Any]) -> ContentIndex:
        idx = cls(max_items=int(doc["max_items"]), max_postings=int(doc["max_postings"]),
                  neighbours=int(doc["neighbours"]))
        for item, toks in doc["items"]:
            idx._tokens[str(item)] = tuple(str(t) for t in toks)
        for tok, post in doc["postings"].items():
            idx._postings[str(tok)] = OrderedDict.fromkeys(str(i) for i in post)
        return idx

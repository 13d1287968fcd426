"""V-SKNN: session-based k-nearest neighbours with position weights (Ludewig & Jannach 2018).

A reconstruction of session-rec's ``VMContextKNN`` with its defaults (``k = 100``,
``sample_size = 1000``, ``sampling = 'recent'``, ``weighting = 'div'``, ``weighting_score =
'div'``, ``remind = True``, no idf, no dwelling time, no time weighting):

1. candidate sessions: every past session sharing an item with the current one; the
   ``sample_size`` most recent of them (by their last event);
2. similarity to the current session ``[i_1 .. i_L]`` (repeats kept): ``Σ w(i)`` over the
   shared items, ``w(i) = p/L`` with ``p`` the position of ``i``'s last occurrence, divided by
   the number of distinct items of the current session;
3. the ``k`` most similar sessions vote for each of their items with ``similarity / s``, where
   ``s`` is how many steps back (1 = the last click) the newest item they share is.

Deviations, all forced by learning from a stream rather than from a frozen training set: the
current session is never its own neighbour (it is learned as it goes); "most recent" is the
order in which sessions last received an event, which is event-time order for a time-sorted
log; each item keeps only its ``sample_size + 1`` most recent sessions, which gives exactly the
same sample (a session among the most recent of the union is among the most recent of every item
list it is on; the extra place covers the asking session itself); similarities are summed exactly
(integer positions) and ties broken by recency, so runs are deterministic.

>>> from schemas.events import Interaction
>>> ev = lambda s, i, t: Interaction(f"{s}{t}", "view", s, s, t, item_id=i)
>>> knn = VSKNN()
>>> for e in [ev("s1", "a", 1), ev("s1", "b", 2), ev("s2", "a", 3), ev("s2", "c", 4)]:
...     knn.learn(e)
>>> knn.recommend(Query("s3", "s3", 5, ("a",)), 3)
['a', 'b', 'c']
"""

from __future__ import annotations

import heapq

from operators.config import INTEREST_TYPES
from recs.evaluation.api import Query, SelfLearning
from schemas.events import Interaction


class VSKNN(SelfLearning):
    name = "vsknn"

    def __init__(self, k: int = 100, sample_size: int = 1000, remind: bool = True) -> None:
        self.k, self.sample_size, self.remind = k, sample_size, remind
        self.description = f"V-SKNN (session-rec vsknn, k {k}, sample {sample_size}, recent)"
        self.session_items: dict[str, dict[str, None]] = {}  # ordered: deterministic sums
        self.session_order: dict[str, int] = {}      # arrival number of the session's last event
        self.item_sessions: dict[str, dict[str, None]] = {}  # oldest first, bounded
        self._clock = 0

    def learn(self, event: Interaction) -> None:
        if event.type not in INTEREST_TYPES or event.item_id is None:
            return
        sid, item = event.session_id, event.item_id
        self._clock += 1
        self.session_order[sid] = self._clock
        items = self.session_items.setdefault(sid, {})
        items[item] = None
        for member in items:  # the session is now the most recent one of each of its items
            lst = self.item_sessions.get(member)
            if lst is None:
                lst = self.item_sessions[member] = {}
            lst.pop(sid, None)
            lst[sid] = None
            if len(lst) > self.sample_size + 1:  # + 1: the asking session is not a candidate
                del lst[next(iter(lst))]

    def neighbours(self, query: Query) -> list[tuple[str, float]]:
        history = query.history
        order = self.session_order
        distinct = set(history)
        if len(distinct) == 1:
            # one item: every candidate shares it, so all are equally similar and the k most
            # recent win (the item's list is already in recency order)
            (item,) = distinct
            recent = [s for s in self.item_sessions.get(item, ()) if s != query.session_id]
            sim = 1.0  # (L/L) / 1 distinct item
            return [(sid, sim) for sid in reversed(recent[-self.k:])]
        relevant: set[str] = set()
        for item in distinct:
            relevant.update(self.item_sessions.get(item, ()))
        relevant.discard(query.session_id)
        sample: list[str] | set[str] = relevant
        if len(relevant) > self.sample_size:  # the most recent ones (orders are unique)
            sample = sorted(relevant, key=order.__getitem__)[-self.sample_size:]
        length = len(history)
        # w(i) = p/L with p the last position of i: sum integer positions, divide once
        position = {item: pos for pos, item in enumerate(history, 1)}
        scale = 1.0 / (length * len(position))
        keys = position.keys()
        scored = []
        for sid in sample:
            shared = keys & self.session_items[sid].keys()
            if shared:
                scored.append((sum(position[i] for i in shared), order[sid], sid))
        best = heapq.nlargest(self.k, scored)
        return [(sid, num * scale) for num, _, sid in best]

    def recommend(self, query: Query, k: int) -> list[str]:
        scores = self.scores(query)
        exclude = query.exclude
        ranked = sorted((i for i in scores if i not in exclude), key=lambda i: (-scores[i], i))
        return ranked[:k]

    def scores(self, query: Query) -> dict[str, float]:
        """Every candidate item's score for ``query`` (session-rec's ``score_items``)."""
        if not query.history:
            return {}
        reversed_history = query.history[::-1]
        own = set(query.history)
        scores: dict[str, float] = {}
        for sid, sim in self.neighbours(query):
            items = self.session_items[sid]
            step = next(s for s, i in enumerate(reversed_history, 1) if i in items)
            vote = sim / step
            for item in items:
                if not self.remind and item in own:
                    continue
                scores[item] = scores.get(item, 0.0) + vote
        return scores

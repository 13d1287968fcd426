"""Ranking metrics for one true next item per prediction, pooled over all predictions.

Definitions (as in session-rec and ``../shared/data/README.md``), with ``rank`` the 1-based
position of the true item in the recommended list (absent: no rank):

- HR@K (= recall@K with one relevant item): share of predictions whose true item is in the top K;
- MRR@K: mean of ``1/rank`` (0 when the rank is above K or absent);
- NDCG@K: mean of ``1/log2(rank + 1)`` (one relevant item, so the ideal DCG is 1);
- precision@K: ``HR@K / K`` (one relevant item among K slots);
- coverage@K: distinct items that appeared in any top-K list, over the catalogue size;
- diversity@K (intra-list, by category): share of item pairs in a top-K list whose categories
  differ, over the pairs where both categories are known; ``None`` without categories;
- novelty@K: mean self-information ``-log2(count(i) / events)`` of the recommended items, counts
  taken when the list was made (items never seen count once), over the non-empty lists;
- MPR (mean percentile rank, streaming protocol): 0-based position of the true item among the
  candidates over ``n_items - 1``, in percent. Candidates a method did not list share the places
  after its list, so an unlisted true item gets the mean of those places.

>>> rank_of(["a", "b", "c"], "b")
2
>>> hit(2, 1), hit(2, 20), round(reciprocal_rank(2, 20), 3), round(ndcg(3, 20), 3)
(0.0, 1.0, 0.5, 0.5)
>>> percentile_position(None, n_listed=2, n_candidates=5)  # places 2, 3, 4 -> mean 3
3.0
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

DEFAULT_KS = (5, 10, 20)
CURVE_K = 50


def rank_of(ranked: Sequence[str], target: str) -> int | None:
    """1-based position of ``target`` in ``ranked``; ``None`` when absent."""
    for pos, item in enumerate(ranked, 1):
        if item == target:
            return pos
    return None


def hit(rank: int | None, k: int) -> float:
    return 1.0 if rank is not None and rank <= k else 0.0


def reciprocal_rank(rank: int | None, k: int) -> float:
    return 1.0 / rank if rank is not None and rank <= k else 0.0


def ndcg(rank: int | None, k: int) -> float:
    return 1.0 / math.log2(rank + 1) if rank is not None and rank <= k else 0.0


def precision(rank: int | None, k: int) -> float:
    return hit(rank, k) / k


def percentile_position(rank: int | None, n_listed: int, n_candidates: int) -> float:
    """0-based place of the true item among ``n_candidates`` (unlisted: mean of the rest)."""
    if rank is not None:
        return float(rank - 1)
    rest = max(n_candidates - n_listed, 1)
    return n_listed + (rest - 1) / 2.0


def intra_list_diversity(items: Sequence[str], categories: Mapping[str, str]) -> float | None:
    """Share of pairs with different categories among pairs of categorised items.

    >>> intra_list_diversity(["a", "b", "c", "x"], {"a": "1", "b": "1", "c": "2"})
    0.6666666666666666
    """
    per_cat: dict[str, int] = {}
    n = 0
    for item in items:
        cat = categories.get(item)
        if cat is not None:
            per_cat[cat] = per_cat.get(cat, 0) + 1
            n += 1
    pairs = n * (n - 1) // 2
    if pairs == 0:
        return None
    same = sum(c * (c - 1) // 2 for c in per_cat.values())
    return (pairs - same) / pairs


@dataclass
class Accumulator:
    """Pools the metrics of one method over all its predictions.

    ``add`` takes the ranked list a method returned and the true item; ``result`` reports.
    Ranks up to ``curve_k`` are kept as a histogram, so HR@K, MRR@K and NDCG@K are exact for
    every K up to ``curve_k`` (:meth:`curve`).
    """

    ks: tuple[int, ...] = DEFAULT_KS
    curve_k: int = CURVE_K
    categories: Mapping[str, str] | None = None
    n: int = 0
    rank_counts: list[int] = field(default_factory=list)
    listed: dict[int, set[str]] = field(default_factory=dict)
    novelty_sum: dict[int, float] = field(default_factory=dict)
    novelty_n: dict[int, int] = field(default_factory=dict)
    diversity_sum: dict[int, float] = field(default_factory=dict)
    diversity_n: dict[int, int] = field(default_factory=dict)
    mpr_sum: float = 0.0
    mpr_n: int = 0

    def __post_init__(self) -> None:
        self.curve_k = max(self.curve_k, *self.ks)
        self.rank_counts = [0] * (self.curve_k + 1)
        for k in self.ks:
            self.listed.setdefault(k, set())
            self.novelty_sum.setdefault(k, 0.0)
            self.novelty_n.setdefault(k, 0)
            self.diversity_sum.setdefault(k, 0.0)
            self.diversity_n.setdefault(k, 0)

    def add(self, ranked: Sequence[str], target: str, *,
            counts: Mapping[str, int] | None = None, total: int = 0,
            n_candidates: int | None = None, mpr_denominator: int | None = None) -> int | None:
        """Record one prediction; returns the rank of ``target`` (``None`` when absent).

        ``counts``/``total``: item event counts so far (for novelty); ``n_candidates`` and
        ``mpr_denominator`` (number of items - 1): for the mean percentile rank.
        """
        self.n += 1
        rank = rank_of(ranked, target)
        if rank is not None and rank <= self.curve_k:
            self.rank_counts[rank] += 1
        info: list[float] = []
        if counts is not None and total > 0:
            log_total = math.log2(total)
            get = counts.get
            info = [log_total - math.log2(get(i) or 1) for i in ranked[:max(self.ks)]]
        for k in self.ks:
            top = ranked[:k]
            self.listed[k].update(top)
            if info and top:
                self.novelty_sum[k] += math.fsum(info[:k]) / len(top)
                self.novelty_n[k] += 1
            if self.categories:
                div = intra_list_diversity(top, self.categories)
                if div is not None:
                    self.diversity_sum[k] += div
                    self.diversity_n[k] += 1
        if n_candidates is not None and mpr_denominator:
            pos = percentile_position(rank, len(ranked), n_candidates)
            self.mpr_sum += 100.0 * pos / mpr_denominator
            self.mpr_n += 1
        return rank

    def hr(self, k: int) -> float:
        return sum(self.rank_counts[1:k + 1]) / self.n if self.n else 0.0

    def mrr(self, k: int) -> float:
        return sum(c / r for r, c in enumerate(self.rank_counts[1:k + 1], 1)) / self.n \
            if self.n else 0.0

    def ndcg(self, k: int) -> float:
        return sum(c / math.log2(r + 1) for r, c in enumerate(self.rank_counts[1:k + 1], 1)) \
            / self.n if self.n else 0.0

    def curve(self) -> list[float]:
        """HR@1 .. HR@curve_k."""
        out, hits = [], 0
        for r in range(1, self.curve_k + 1):
            hits += self.rank_counts[r]
            out.append(hits / self.n if self.n else 0.0)
        return out

    def result(self, catalogue_size: int) -> dict[str, float | int | None]:
        out: dict[str, float | int | None] = {}
        for k in self.ks:
            out[f"hr@{k}"] = self.hr(k)
            out[f"mrr@{k}"] = self.mrr(k)
            out[f"ndcg@{k}"] = self.ndcg(k)
            out[f"precision@{k}"] = self.hr(k) / k
            out[f"coverage@{k}"] = len(self.listed[k]) / catalogue_size if catalogue_size else 0.0
            out[f"novelty@{k}"] = (self.novelty_sum[k] / self.novelty_n[k]
                                   if self.novelty_n[k] else None)
            out[f"diversity@{k}"] = (self.diversity_sum[k] / self.diversity_n[k]
                                     if self.diversity_n[k] else None)
        if self.mpr_n:
            out["mpr"] = self.mpr_sum / self.mpr_n
        out["predictions"] = self.n
        return out

"""Online collaborative model: River matrix factorization updated per interaction.

:class:`OnlineMF` wraps a River ``reco`` model (``BiasedMF``, or ``FunkMF``) and learns one
:class:`~schemas.events.Interaction` at a time, in one of two explicit modes:

- ``implicit``: an interest event is target 1, its step scaled by its type's weight
  (``event_weights``: view < click < cart < purchase); then ``negatives`` items, drawn uniformly
  by a seeded RNG from the items seen so far, never the user's own, learn target 0 at weight 1
  (River's ``reco`` models regress explicit targets: the negatives teach them what scores low).
  A rating is a positive when ``value >= positive_rating``, else ignored.
- ``explicit``: a rating learns its value; other event types are ignored.

**A weight scales the learning rate** (``lr × w`` for that one step, latent and bias alike)
instead of repeating the update: the cost per event stays flat, and to first order one step of
``w × lr`` is ``w`` unit steps. ``lr × max(weight) <= 1`` is enforced; a model that diverges
anyway raises ``FloatingPointError`` naming what became non-finite (the user's vector or bias, a
touched item's vector or bias, or their predictions) instead of serving NaN.

Why ``BiasedMF`` with a small ``bias_lr``: on MovieLens 100K (runs in
:mod:`recs.evaluation.learned`) the item bias learns popularity against the uniform negatives,
the vectors the rest: recall@10 0.164 against 0.139 for the best ``FunkMF`` tried.

Pure like every operator: no I/O, no clock, seeded randomness: the same log gives the same
vectors bit for bit (on one numpy build). Unlike the step functions the state is one mutable
object (a copy per event would cost O(model)); :func:`snapshot`/:func:`restore` are its codec.

**Bounded memory**: at most ``max_users`` users and ``max_items`` items, the least recently
learned from evicted first (drawing an item as a negative does not refresh it); each user keeps
its newest ``max_user_items`` items. Measured at 16 factors (``python -m
recs.evaluation.learned bench``): about 2.0 kB per user holding 20 items and 0.7 kB per item.

>>> from schemas.events import Interaction
>>> m = OnlineMF(MFConfig(n_factors=4, negatives=1))
>>> ev = lambda u, i, t: Interaction(f"e{t}", "click", u, "s", t, item_id=i)
>>> for t, (u, i) in enumerate([("a", "x"), ("b", "y"), ("a", "z")]):
...     _ = m.learn(ev(u, i, t))
>>> m.learn(ev("b", "x", 4))  # the positive, then one negative: not b's own y
Learned(updates=2, items=('x', 'z'), evicted_users=(), evicted_items=())
>>> m.events, m.updates, len(m.user_vector("a"))
(4, 6, 4)
>>> [item for item, _ in m.recommend("a", 2, exclude={"x"})]
['y', 'z']

Snapshots (versioned, CRC-checked, inspectable) are :mod:`operators.mf_codec`.
"""

from __future__ import annotations

import math
import random
from collections import OrderedDict
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
from river import optim, reco

from operators.mf_config import BIASED, EXPLICIT, SQUARED, MFConfig
from schemas.events import Interaction

FORMAT: Final = "recs.online_mf"
FORMAT_VERSION: Final = 1
F8: Final = np.dtype("<f8")


@dataclass(frozen=True, slots=True)
class Learned:
    """What one event changed: the SGD updates applied, the items whose vectors moved (the
    positive first), and the users and items evicted to stay within the caps."""

    updates: int
    items: tuple[str, ...] = ()
    evicted_users: tuple[str, ...] = ()
    evicted_items: tuple[str, ...] = ()


class _ScaledRate(optim.base.Scheduler):
    """A constant learning rate times ``factor``, set per update (the event's weight)."""

    def __init__(self, lr: float) -> None:
        self.lr = lr
        self.factor = 1.0

    def get(self, t: int) -> float:
        return self.lr * self.factor


class OnlineMF:
    """The model and the bookkeeping around it: sampling pool, LRU orders, scoring matrix."""

    def __init__(self, cfg: MFConfig | None = None) -> None:
        cfg = cfg or MFConfig()
        self.cfg = cfg
        self.events = 0   # events learned (ignored events do not count)
        self.updates = 0  # SGD updates applied: the model version
        self._rate, self._bias_rate = _ScaledRate(cfg.lr), _ScaledRate(cfg.bias_lr)
        init = optim.initializers.Normal(mu=0.0, sigma=cfg.init_sigma, seed=cfg.seed)
        loss = optim.losses.Squared() if cfg.loss == SQUARED else \
            optim.losses.Log()  # type: ignore[no-untyped-call]
        if cfg.model == BIASED:
            self.river: Any = reco.BiasedMF(
                n_factors=cfg.n_factors, bias_optimizer=optim.SGD(self._bias_rate),
                latent_optimizer=optim.SGD(self._rate), loss=loss, l2_bias=cfg.l2_bias,
                l2_latent=cfg.l2, latent_initializer=init, clip_gradient=cfg.clip_gradient,
                seed=cfg.seed)
            self._optimizers: tuple[str, ...] = (
                "u_latent_optimizer", "i_latent_optimizer", "u_bias_optimizer", "i_bias_optimizer")
        else:
            self.river = reco.FunkMF(n_factors=cfg.n_factors, optimizer=optim.SGD(self._rate),
                                     loss=loss, l2=cfg.l2, initializer=init,
                                     clip_gradient=cfg.clip_gradient, seed=cfg.seed)
            self._optimizers = ("u_optimizer", "i_optimizer")
        for name in self._optimizers:  # share the schedulers, so one factor scales them all
            opt = getattr(self.river, name)
            opt.lr = self._bias_rate if "bias" in name else self._rate
        self._init_rng = init._rng
        self._neg_rng = random.Random(cfg.seed)
        self._users: OrderedDict[str, dict[str, None]] = OrderedDict()  # LRU, their items
        self._items: OrderedDict[str, None] = OrderedDict()             # LRU
        self._pool: list[str] = []      # item ids by slot: sampling pool and matrix rows
        self._slot: dict[str, int] = {}
        self._matrix = np.zeros((16, cfg.n_factors))
        self._ibias = np.zeros(16)

    def learn(self, event: Interaction) -> Learned:
        """Learn one event (see the module docstring for what each mode takes)."""
        item, user, cfg = event.item_id, event.user_id, self.cfg
        if item is None:
            return Learned(0)
        if cfg.mode == EXPLICIT:
            if event.type != "rating" or event.value is None:
                return Learned(0)
            self._update(user, item, float(event.value), 1.0)
            touched: tuple[str, ...] = (item,)
        else:
            weight = cfg.event_weights.get(event.type, 0.0)
            if weight <= 0 or (event.type == "rating" and
                               (event.value is None or event.value < cfg.positive_rating)):
                return Learned(0)
            self._update(user, item, 1.0, weight)
            negatives = self._negatives(user, item)
            for neg in negatives:
                self._update(user, neg, 0.0, 1.0)
            touched = (item, *negatives)
        diverged = self._non_finite(user, touched)
        if diverged:
            raise FloatingPointError(f"operators.online_mf: learn: the model diverged at update "
                                     f"{self.updates} (user {user!r}, item {item!r}; non-finite: "
                                     f"{', '.join(diverged)}): lower lr ({cfg.lr!r}) or the "
                                     f"weights, or raise l2 ({cfg.l2!r})")
        self.events += 1
        return Learned(len(touched), touched, *self._remember(user, item))

    def _update(self, user: str, item: str, y: float, weight: float) -> None:
        self._rate.factor = self._bias_rate.factor = weight
        self.river.learn_one(user, item, y)
        self.updates += 1
        slot = self._slot.get(item)
        if slot is None:
            slot = self._add_slot(item)
        self._matrix[slot] = self.river.i_latents[item]
        if self.cfg.model == BIASED:
            self._ibias[slot] = self.river.i_biases[item]

    def _non_finite(self, user: str, touched: tuple[str, ...]) -> list[str]:
        """The parts an update just wrote that are not finite: the user's vector and constant
        term, the touched items' vectors and biases, and their predictions for the user (finite
        vectors can still overflow in the dot product). Empty when the model is sound."""
        vec, const = self._user_terms(user)
        slots = [self._slot[i] for i in touched]  # every touched item has a slot by now
        items, biases = self._matrix[slots], self._ibias[slots]
        with np.errstate(over="ignore", invalid="ignore"):
            predictions = items @ vec + biases + const
        parts = (("user vector", vec), ("user bias", np.array(const)), ("item vectors", items),
                 ("item biases", biases), ("predictions", predictions))
        return [name for name, values in parts if not np.isfinite(values).all()]

    def _negatives(self, user: str, item: str) -> list[str]:
        """Up to ``negatives`` distinct items, not the user's; at most 3 draws per negative."""
        pool, want, own = self._pool, self.cfg.negatives, self._users.get(user, {})
        out: list[str] = []
        for _ in range(3 * want):
            if len(out) == want or not pool:
                break
            cand = pool[self._neg_rng.randrange(len(pool))]
            if cand != item and cand not in own and cand not in out:
                out.append(cand)
        return out

    def _add_slot(self, item: str) -> int:
        slot = len(self._pool)
        if slot == len(self._matrix):  # grow by doubling
            self._matrix = np.concatenate([self._matrix, np.zeros_like(self._matrix)])
            self._ibias = np.concatenate([self._ibias, np.zeros_like(self._ibias)])
        self._pool.append(item)
        self._slot[item] = slot
        self._items[item] = None
        return slot

    def _remember(self, user: str, item: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """Refresh the user and the item in the LRU orders; evict beyond the caps."""
        own = self._users.pop(user, None) or {}
        own.pop(item, None)
        own[item] = None
        while len(own) > self.cfg.max_user_items:
            del own[next(iter(own))]
        self._users[user] = own
        self._items.move_to_end(item)
        gone_users, gone_items = [], []
        while len(self._users) > self.cfg.max_users:
            old, _ = self._users.popitem(last=False)
            self.river.u_latents.pop(old, None)
            if self.cfg.model == BIASED:
                self.river.u_biases.pop(old, None)
            gone_users.append(old)
        while len(self._items) > self.cfg.max_items:
            old, _ = self._items.popitem(last=False)
            self._drop_item(old)
            gone_items.append(old)
        return tuple(gone_users), tuple(gone_items)

    def _drop_item(self, item: str) -> None:
        slot, last = self._slot.pop(item), len(self._pool) - 1
        moved = self._pool.pop()
        if slot != last:  # swap-remove: the last item takes the free slot
            self._pool[slot], self._slot[moved] = moved, slot
            self._matrix[slot], self._ibias[slot] = self._matrix[last], self._ibias[last]
        self.river.i_latents.pop(item, None)
        if self.cfg.model == BIASED:
            self.river.i_biases.pop(item, None)

    @property
    def n_users(self) -> int:
        return len(self._users)

    @property
    def n_items(self) -> int:
        return len(self._pool)

    def user_vector(self, user: str) -> np.ndarray[Any, np.dtype[np.float64]] | None:
        """A copy of the user's latent vector; ``None`` for an unknown user."""
        vec = self.river.u_latents.get(user) if user in self._users else None
        return None if vec is None else np.array(vec, dtype=F8)

    def item_vector(self, item: str) -> np.ndarray[Any, np.dtype[np.float64]] | None:
        slot = self._slot.get(item)
        return None if slot is None else self._matrix[slot].copy()

    def item_bias(self, item: str) -> float:
        slot = self._slot.get(item)
        return 0.0 if slot is None else float(self._ibias[slot])

    def user_bias(self, user: str) -> float:
        """The user's constant score term (global mean plus user bias; 0 for ``funk``)."""
        return float(self._user_terms(user)[1])

    def _user_terms(self, user: str) -> tuple[np.ndarray[Any, Any], float]:
        """The user's vector and constant score term; zeros for an unknown user (no side
        effect: River's ``predict_one`` would create the user and draw its vector)."""
        vec = self.river.u_latents.get(user) if user in self._users else None
        biased = self.cfg.model == BIASED
        const = self.river.global_mean.get() + self.river.u_biases.get(user, 0.0) if biased \
            else 0.0
        return (np.zeros(self.cfg.n_factors) if vec is None else vec), const

    def score(self, user: str, items: Iterable[str]) -> np.ndarray[Any, np.dtype[np.float64]]:
        """Predicted targets (a logit under log loss); unknown ids count as zero vectors."""
        vec, const = self._user_terms(user)
        slots = [self._slot.get(i, -1) for i in items]
        known = np.array([s >= 0 for s in slots], dtype=bool)
        idx = np.array([max(s, 0) for s in slots], dtype=np.intp)
        out = self._matrix[idx] @ vec + self._ibias[idx] + const
        return np.where(known, out, const)

    def seed_item(self, item: str, vector: Iterable[float], bias: float) -> bool:
        """Give an item the model has never learned a starting vector and bias (a new item
        placed by its content, :mod:`operators.content`), so its first interactions refine
        that instead of a random draw. False (and nothing changes) for a known item."""
        if item in self._slot:
            return False
        vec = np.array(list(vector), dtype=F8)
        if vec.shape != (self.cfg.n_factors,) or not np.isfinite(vec).all() or \
                not math.isfinite(bias):
            raise ValueError(f"operators.online_mf: seed_item {item!r}: expected "
                             f"{self.cfg.n_factors} finite floats and a finite bias")
        self.river.i_latents[item] = vec.copy()
        if self.cfg.model == BIASED:
            self.river.i_biases[item] = float(bias)
        slot = self._add_slot(item)
        self._matrix[slot] = vec
        self._ibias[slot] = float(bias) if self.cfg.model == BIASED else 0.0
        self._items.move_to_end(item)
        while len(self._items) > self.cfg.max_items:
            old, _ = self._items.popitem(last=False)
            self._drop_item(old)
        return item in self._slot

    def predict(self, user: str, item: str) -> float:
        return float(self.score(user, (item,))[0])

    def recommend(self, user: str, k: int,
                  exclude: Collection[str] = ()) -> list[tuple[str, float]]:
        """The ``k`` best known items with their scores, brute force over all items, ties by
        slot (arrival order, but an eviction moves the last item into the freed slot);
        ``exclude`` never appears."""
        n = len(self._pool)
        if k <= 0 or n == 0:
            return []
        vec, const = self._user_terms(user)
        scores = self._matrix[:n] @ vec + self._ibias[:n] + const
        for item in exclude:
            slot = self._slot.get(item)
            if slot is not None:
                scores[slot] = -np.inf
        if k < n:  # the k largest, ties at the boundary in slot order
            kth = np.partition(scores, n - k)[n - k]
            above = np.flatnonzero(scores > kth)
            idx = np.concatenate([above, np.flatnonzero(scores == kth)[:k - len(above)]])
        else:
            idx = np.arange(n)
        idx = idx[np.lexsort((idx, -scores[idx]))]
        return [(self._pool[j], float(scores[j])) for j in idx if scores[j] != -np.inf]

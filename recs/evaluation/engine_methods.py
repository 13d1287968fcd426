"""The engine's methods for ``recs eval``: the learned blend, the hand-tuned blend (its prior and
its variants) and each source alone, all reading one :class:`~recs.evaluation.engine_recs.
EngineLearner` (the pure operators over the log, as the server reads Redis)."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import replace
from typing import Any

from operators import learned_blend
from operators.blend import (
    Scored,
    blend,
)
from operators.candidates import recent_items, session_candidates
from operators.config import EngineConfig
from operators.learned_blend import BlendModel, LearnedBlendConfig
from recs.evaluation.api import Learner, Method, Query
from recs.evaluation.engine_recs import (
    TUNED_BLEND,
    TUNED_CONFIG,
    Blend,
    EngineLearner,
    blend_inputs,
)
from state import keys


def _take(lst: Sequence[Sequence[Any]], k: int, banned: Collection[str]) -> list[str]:
    out: list[str] = []
    for entry in lst:
        if entry[0] not in banned:
            out.append(entry[0])
            if len(out) == k:
                break
    return out


class _EngineMethod:
    name = "engine"
    description = ""

    def __init__(self, learner: EngineLearner) -> None:
        self._learner = learner

    @property
    def learner(self) -> Learner:
        return self._learner

    def recommend(self, query: Query, k: int) -> list[str]:
        raise NotImplementedError

    def _last(self, sess: Mapping[str, Any] | None) -> str | None:
        events = sess.get("events") if sess else None
        return events[-1][0] if events else None


class SessionSource(_EngineMethod):
    name = "engine.session"
    description = "engine: because you viewed (as served: no repeats, no fallback)"

    def recommend(self, query: Query, k: int) -> list[str]:
        sess = self._learner.session(query.user_id)
        if sess is None:
            return []
        lists = self._learner.neighbour_lists(keys.KIND_SIMILAR, recent_items(sess))
        return [c.item_id for c in session_candidates(sess, lists, k=k, exclude=query.exclude)]


class RelationSource(_EngineMethod):
    def __init__(self, learner: EngineLearner, relation: str) -> None:
        super().__init__(learner)
        self.relation = relation
        label = "similar" if relation == keys.KIND_SIMILAR else "bought"
        self.name = f"engine.{label}"
        self.description = f"engine: {label} items of the last item"

    def recommend(self, query: Query, k: int) -> list[str]:
        last = self._last(self._learner.session(query.user_id))
        if last is None:
            return []
        return _take(self._learner.neighbour_list(self.relation, last), k, query.exclude)


class TrendingSource(_EngineMethod):
    name = "engine.trending"
    description = "engine: global trending"

    def recommend(self, query: Query, k: int) -> list[str]:
        return _take(self._learner.trending_list(), k, query.exclude)


class VectorSource(_EngineMethod):
    """The learned retrieval alone, read from the engine's own model (not in the default set:
    ``online_mf`` is the same model learned on its own; :mod:`recs.evaluation.tune` reads it)."""

    name = "engine.vector"
    description = "engine: the online model's retrieval (known users only)"

    def recommend(self, query: Query, k: int) -> list[str]:
        return [i for i, _ in self._learner.vector_list(query.user_id, k, query.exclude)]


class FullBlend(_EngineMethod):
    name = "engine"
    description = "engine: full blend (with the learned vector source)"

    def __init__(self, learner: EngineLearner, blend: Blend = TUNED_BLEND, *,
                 name: str = "engine", description: str | None = None) -> None:
        super().__init__(learner)
        self.blend = blend
        self.name = name
        if description is not None:
            self.description = description

    def recommend(self, query: Query, k: int) -> list[str]:
        return [c.item_id for c in self.scored(query, k)]

    def scored(self, query: Query, k: int) -> list[Scored]:
        """The blend's candidates with their evidence (what :meth:`recommend` ranks)."""
        sess, similar, bought, fills, params, vector, because, events = blend_inputs(
            self._learner, self.blend, query.user_id, query.session_id, query.exclude)
        return blend(sess, similar, bought, fills, params, k=k, exclude=query.exclude,
                     vector=vector, vector_because=because, vector_events=events)


class LearnedBlend(FullBlend):
    """The learned blend (:mod:`operators.learned_blend`): the hand-tuned blend's candidates
    ordered by the weights the learner learns from every interest event, test-then-train;
    the hand-tuned order until the learned one is warm (:func:`operators.learned_blend.is_warm`)."""

    description = "engine: learned blend (hand-tuned order until warm)"

    def __init__(self, learner: EngineLearner, blend: Blend = TUNED_BLEND, *,
                 cfg: LearnedBlendConfig | None = None, name: str = "engine") -> None:
        super().__init__(learner, blend, name=name)
        learner.learn_blend(blend, cfg or LearnedBlendConfig())

    def recommend(self, query: Query, k: int) -> list[str]:
        eng = self._learner
        cands = eng.blend_candidates(query.user_id, query.session_id, query.ts, query.exclude)
        ranked = [c.item_id for c in learned_blend.order(eng.blend_model, cands, k,
                                                           eng.blend_cfg)]
        if len(ranked) < k:  # the hand-tuned blend's own fills beyond the pool
            taken = set(ranked)
            ranked += [s.item_id for s in self.scored(query, 2 * k) if s.item_id not in taken]
        return ranked[:k]


class FrozenBlend(FullBlend):
    """The learned blend with weights learned elsewhere and frozen (``recs eval --holdout``):
    the learned order when those weights were warm where they were learned, else the
    hand-tuned one; it never learns from this log."""

    def __init__(self, learner: EngineLearner, model: BlendModel, cfg: LearnedBlendConfig,
                 source: str, blend: Blend = TUNED_BLEND, *,
                 name: str = "engine_holdout") -> None:
        super().__init__(learner, blend, name=name,
                         description=f"engine: the learned blend frozen as learned on {source}")
        self.model, self.cfg = model, cfg
        if learner.blend_prior is None:
            learner.learn_blend(blend, cfg)

    def recommend(self, query: Query, k: int) -> list[str]:
        cands = self._learner.blend_candidates(query.user_id, query.session_id, query.ts,
                                               query.exclude)
        ranked = [c.item_id for c in learned_blend.order(self.model, cands, k, self.cfg)]
        if len(ranked) < k:
            taken = set(ranked)
            ranked += [s.item_id for s in self.scored(query, 2 * k) if s.item_id not in taken]
        return ranked[:k]


def engine_methods(cfg: EngineConfig = TUNED_CONFIG, blend: Blend = TUNED_BLEND,
                   holdout: tuple[BlendModel, LearnedBlendConfig, str] | None = None,
                   ) -> list[Method]:
    """The learned blend, the hand-tuned one (its prior), the hand-tuned one without learned
    sources, with ``holdout`` (model, config, where it was learned) the learned blend frozen
    with those weights, then each source alone, all on one learner (the online model alone is
    ``online_mf``, :mod:`recs.evaluation.learned`)."""
    learner = EngineLearner(cfg)
    static = FullBlend(learner, replace(blend, vector_weight=0.0), name="engine_static",
                       description="engine: full blend without learned sources (vector off)")
    prior = FullBlend(learner, blend, name="engine_prior",
                      description="engine: the hand-tuned blend alone (the learned blend's "
                      "prior)")
    methods: list[Method] = [LearnedBlend(learner, blend), prior, static]
    if holdout is not None:
        methods.append(FrozenBlend(learner, *holdout, blend=blend))
    return [*methods, SessionSource(learner), RelationSource(learner, keys.KIND_SIMILAR),
            RelationSource(learner, keys.KIND_BOUGHT), TrendingSource(learner)]

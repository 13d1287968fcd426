"""The engine's recommendations, read from the reference runner's states as the server reads Redis.

One :class:`EngineLearner` applies every event with :class:`stream.reference.ReferenceRunner`
(the same operators and routing as the Flink job) and renders the states with the operators' own
``render`` functions (the values the job publishes). Several methods read it:

- ``engine.session``: "because you viewed" exactly as the server answers it
  (:func:`operators.candidates.session_candidates` over the similar-items lists of the user's
  recent items, no repeats, no fallback);
- ``engine.similar``: the similar-items list of the user's last item;
- ``engine.bought``: the bought-together list of the user's last item;
- ``engine.trending``: the global trending list;
- ``engine``: the full blend (:class:`Blend`): session candidates (repeats allowed), plus
  bought-together candidates, plus the learned retrieval (``vector``: the user's best items by
  the online model, the reference runner's own (``models=True``: the stream's
  :class:`operators.vector_model.VectorModel`, an :class:`operators.online_mf.OnlineMF` with
  ``cfg.mf``), as :func:`operators.blend.vector_shares`), plus a reminder score for the recent
  items themselves, then filled up from trending in the category of the last item and the
  global trending list;
- ``engine_static``: the same blend without learned sources (``vector_weight`` 0), the engine
  as it was before the online model: a run shows both side by side.

The online model learns in :meth:`EngineLearner.learn`, with the other operators, so it is
test-then-train like them: the harness asks every method first, then the learner learns the
event. A user the model has never learned from has no vector and gets no ``vector`` candidates
(as the server, which retrieves by the user's stored vector). In a frozen test part the model,
like every operator, does not learn.

**The gate** (``Blend.vector_min_events``, 30 in :data:`TUNED_BLEND`): a user's vector joins the
blend only once the model has learned from that user 30 times. Measured with
``python -m recs.evaluation.tune blend`` (grids in docs/quality/tuning.md): without it any
weight hurts the session logs, where a user is one short session whose vector is barely
learned and whose retrieval is about popularity (``engine.vector`` HR@20 0.175 on rsc15, 0.032
on diginetica); its candidates push out the blend's long tail and every trending fill
(diginetica HR@20 0.350 -> 0.294 already at weight 0.02; at the served weights, ungated, rsc15
0.709 -> 0.660 and diginetica 0.350 -> 0.227). With the gate at 30 the session logs lose at most
0.0005 HR@20 (MRR@20 0.0002) while the MovieLens validation stream gains 0.005 recall@10 (0.010
ungated). The served blend applies the same gate (``BlendParams.vector_min_events``): the stream
publishes, with each user's vector, how many events the model learned from the user.

Exclusions (the streaming protocol's known items) apply to every source.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from operators import learned_blend, neighbours, session, trending
from operators.blend import (
    TRENDING,
    TRENDING_CATEGORY,
    BlendParams,
    Fill,
    Shares,
    shares,
    vector_shares,
)
from operators.candidates import recent_items
from operators.config import INTEREST_TYPES, EngineConfig
from operators.learned_blend import BlendModel, LearnedBlendConfig
from operators.online_mf import OnlineMF
from schemas.events import Interaction, ItemUpsert
from state import keys
from stream.reference import ReferenceRunner

MAX_REMIND = 20     # recent items whose repeat rates are measured
PRIOR_EVENTS = 10   # smoothing of the measured rates
_SERVED: Final = BlendParams()  # the served defaults (operators/blend.py)


@dataclass(frozen=True, slots=True)
class Blend:
    """How the full blend combines the engine's sources (see the module docstring)."""

    recent: int = 5               # recent items whose neighbours vote
    recency_decay: float = 0.7    # weight of the r-th most recent item: decay ** r
    allow_repeats: bool = True    # may recommend items of the user's recent history
    calibrated_remind: bool = True  # score recent items by their measured repeat rate (below)
    remind_weight: float = 0.0    # else: score of the r-th most recent item is w * decay ** r
    remind_decay: float = 0.5
    bought_weight: float = 0.5    # weight of bought-together candidates (same scoring)
    vector_weight: float = _SERVED.vector_weight  # the learned retrieval (0: engine_static)
    vector_temperature: float = _SERVED.vector_temperature
    vector_pool: int = 200        # items retrieved from the model per request
    vector_min_events: int = 0    # events the model learned from the user before retrieval
    vector_min_prior: int = 0     # of them, learned in the user's earlier sessions
    category_fill: bool = True    # fill from the last item's category trending first
    pool: int = 200               # candidates scored before cutting to k


#: The configuration ``recs eval`` runs the engine with (effects measured: docs/quality.md and
#: the module docstring): the engine defaults, which took the 90-day similar-items half-life
#: measured here, and learn the online model with ``EngineConfig.mf``.
TUNED_CONFIG = EngineConfig()
#: The served blend's weights (``BlendParams``: vector weight 1, temperature 0.2) plus a gate the
#: server does not have yet: the learned source only for users the model has learned from at
#: least 30 times (docs/quality/tuning.md has the grids and why).
TUNED_BLEND = Blend(recent=5, recency_decay=0.5, vector_min_events=30)


@dataclass
class EngineLearner:
    """The reference runner plus render caches keyed by state identity (states are immutable)."""

    cfg: EngineConfig = field(default_factory=EngineConfig)
    learned: bool = True          # run the online models (cfg.mf) too, as the topology does
    runner: ReferenceRunner = field(init=False)
    # per user: events the model learned, and (last session, learned in earlier sessions)
    mf_events: dict[str, int] = field(default_factory=dict, init=False)
    mf_sessions: dict[str, tuple[str, int]] = field(default_factory=dict, init=False)
    _cache: dict[tuple[str, str], tuple[object, Any]] = field(default_factory=dict, init=False)

    repeat_hits: list[int] = field(default_factory=lambda: [0] * MAX_REMIND, init=False)
    repeat_events: int = field(default=0, init=False)
    top_hits: int = field(default=0, init=False)
    top_events: int = field(default=0, init=False)
    # the learned blend (operators/learned_blend.py): its prior, config and model, the
    # candidates last asked for (user, ts, candidates: reused when that event is learned)
    blend_prior: Blend | None = field(default=None, init=False)
    blend_cfg: LearnedBlendConfig = field(default_factory=LearnedBlendConfig, init=False)
    blend_model: BlendModel = field(default_factory=learned_blend.initial, init=False)
    blend_outcomes: list[int] = field(default_factory=lambda: [0, 0], init=False)
    _asked: tuple[str, int, Collection[str], tuple[learned_blend.Candidate, ...]] | None = \
        field(default=None, init=False)

    def __post_init__(self) -> None:
        self.runner = ReferenceRunner(self.cfg, models=self.learned)

    def learn_blend(self, prior: Blend, cfg: LearnedBlendConfig) -> None:
        """Learn the blend's weights (``prior``'s candidates) from every interest event."""
        self.blend_prior, self.blend_cfg = prior, cfg

    def blend_candidates(self, user_id: str, session_id: str, ts: int,
                         exclude: Collection[str] = ()) -> tuple[learned_blend.Candidate, ...]:
        """The learned blend's candidates for a request (cached for the event at ``ts``)."""
        asked = self._asked
        if asked is not None and asked[0] == user_id and asked[1] == ts and \
                (asked[2] is exclude or asked[2] == exclude):
            return asked[3]
        if self.blend_prior is None:
            raise ValueError("EngineLearner.blend_candidates: learn_blend() was not called")
        inputs = blend_inputs(self, self.blend_prior, user_id, session_id, exclude)
        recent: dict[str, Shares] = {}
        if self.cfg.similar_recent is not None and inputs[0] is not None:
            recent = self.neighbour_shares(keys.KIND_SIMILAR_RECENT,
                                           recent_items(inputs[0], learned_blend.POSITIONS))
        cands = learned_blend.candidates(*inputs[:5], self.blend_cfg, exclude=exclude,
                                         vector=inputs[5], vector_because=inputs[6],
                                         vector_events=inputs[7], similar_recent=recent,
                                         now=ts)
        self._asked = (user_id, ts, exclude, cands)
        return cands

    def _learn_blend(self, event: Interaction) -> None:
        """The event labels the candidates asked for just before it (those of the scored
        query, exclusions included, when it was scored)."""
        target = learned_blend.label_of(event)
        if self.blend_prior is None or target is None or \
                event.user_id not in self.runner.sessions:
            return
        asked = self._asked
        if asked is not None and asked[0] == event.user_id and asked[1] == event.ts:
            cands = asked[3]
        else:
            cands = self.blend_candidates(event.user_id, event.session_id, event.ts)
        self._asked = None
        self.blend_model, outcome = learned_blend.step(
            self.blend_model, learned_blend.Example(target, cands, event.ts),
            self.blend_cfg)
        if outcome is not None:
            self.blend_outcomes[outcome.served_learned] += 1

    @property
    def mf(self) -> OnlineMF | None:
        """The collaborative model the reference runner learns (the stream's own)."""
        models = self.runner.models
        return models.vectors.mf if models is not None else None

    def learn(self, event: Interaction) -> None:
        self._learn_blend(event)
        self._calibrate(event)
        mf = self.mf
        before = mf.events if mf is not None else 0
        self.runner.on_event(event)  # the operators and, when learned, the online models
        if mf is not None and mf.events > before:
            user, n = event.user_id, self.mf_events.get(event.user_id, 0)
            last, earlier = self.mf_sessions.get(user, (event.session_id, 0))
            if last != event.session_id:
                earlier = n
            self.mf_events[user] = n + 1
            self.mf_sessions[user] = (event.session_id, earlier)

    def prior_events(self, user_id: str, session_id: str) -> int:
        """Events the model learned from the user in sessions other than ``session_id``
        (sessions arrive in time order: all but the user's current one)."""
        n = self.mf_events.get(user_id, 0)
        last, earlier = self.mf_sessions.get(user_id, (session_id, 0))
        return earlier if last == session_id else n

    def vector_list(self, user_id: str, n: int, exclude: Collection[str] = (),
                    min_events: int = 0, min_prior: int = 0,
                    session_id: str = "") -> list[tuple[str, float]]:
        """The online model's best ``n`` items for the user with their scores, best first;
        empty without a model, for a user it has learned from fewer than ``min_events`` times
        (or not at all: no vector to retrieve by), or fewer than ``min_prior`` times outside
        the session ``session_id``."""
        mf = self.mf
        if mf is None or self.mf_events.get(user_id, 0) < max(min_events, 1) or \
                (min_prior > 0 and self.prior_events(user_id, session_id) < min_prior) or \
                mf.user_vector(user_id) is None:
            return []
        return mf.recommend(user_id, n, exclude)

    def _calibrate(self, event: Interaction) -> None:
        """Count, before learning ``event``, whether it repeats the user's r-th most recent item
        and whether it is the top similar item of the last one (test-then-train, no leak)."""
        item = event.item_id
        if item is None or event.type not in INTEREST_TYPES:
            return
        sess = self.session(event.user_id)
        history = recent_items(sess, MAX_REMIND) if sess is not None else []
        if not history:
            return
        self.repeat_events += 1
        if item in history:
            self.repeat_hits[history.index(item)] += 1
        top = self.neighbour_list(keys.KIND_SIMILAR, history[0])
        if top:
            self.top_events += 1
            self.top_hits += top[0][0] == item

    def remind_scores(self, n: int) -> list[float]:
        """Score of the r-th most recent item: P(next = it) / P(next = top similar item).

        Session candidates score about 1 for the last item's top similar item, so dividing
        the repeat rate by that item's hit rate puts reminders on the same scale. Smoothed
        with a prior of ``PRIOR_EVENTS`` events without repeats.
        """
        p_top = (self.top_hits + 1) / (self.top_events + PRIOR_EVENTS)
        denom = (self.repeat_events + PRIOR_EVENTS) * p_top
        return [h / denom for h in self.repeat_hits[:n]]

    def observe(self, event: Interaction) -> None:
        """Frozen part: only the user's session state moves, no relation or trending learns."""
        sessions = self.runner.sessions
        new, _pairs = session.step(sessions.get(event.user_id), event, self.cfg.session)
        if new is None:
            sessions.pop(event.user_id, None)
        else:
            sessions[event.user_id] = new

    def on_item(self, upsert: ItemUpsert) -> None:
        self.runner.on_item(upsert)

    def model_version(self) -> str:
        """What ``vector`` evidence names as its cause, as the server names it: the model version
        (here its update count)."""
        models = self.runner.models
        return f"model v{models.vectors.version}" if models is not None else "model"

    def _cached(self, kind: str, key: str, state: object, make: Any) -> Any:
        hit = self._cache.get((kind, key))
        if hit is not None and hit[0] is state:
            return hit[1]
        value = make()
        self._cache[(kind, key)] = (state, value)
        return value

    def session(self, user_id: str) -> dict[str, Any] | None:
        st = self.runner.sessions.get(user_id)
        if st is None:
            return None
        return self._cached("session", user_id, st, lambda: session.render(st))  # type: ignore[no-any-return]

    def neighbour_list(self, relation: str, item_id: str) -> list[list[Any]]:
        st = self.runner.relations.get((relation, item_id))
        if st is None:
            return []
        ncfg = self.cfg.neighbour(relation)
        return self._cached(relation, item_id, st,  # type: ignore[no-any-return]
                            lambda: neighbours.render(st, ncfg)["items"])

    def neighbour_lists(self, relation: str, items: Sequence[str]) -> dict[str, list[list[Any]]]:
        return {i: self.neighbour_list(relation, i) for i in items}

    def neighbour_shares(self, relation: str, items: Sequence[str]) -> dict[str, Shares]:
        """The lists as :func:`operators.blend.shares`, cached like the rendered lists."""
        out: dict[str, Shares] = {}
        for i in items:
            st = self.runner.relations.get((relation, i))
            if st is not None:
                out[i] = self._cached(f"{relation}:shares", i, st,
                                      lambda i=i: shares(self.neighbour_list(relation, i)))
        return out

    def trending_list(self, category: str | None = None) -> list[list[Any]]:
        scope = keys.trending_scope(category)
        st = self.runner.topk.get(scope)
        if st is None:
            return []
        return self._cached("trending", scope, st,  # type: ignore[no-any-return]
                            lambda: trending.render_topk(st, self.cfg.trending)["items"])

    def category(self, item_id: str) -> str | None:
        return trending.category_of(self.runner.items.get(item_id))


def blend_inputs(eng: EngineLearner, b: Blend, user_id: str, session_id: str,
                 exclude: Collection[str]) -> tuple[Any, dict[str, Shares], dict[str, Shares],
                                                    list[Fill], BlendParams, Shares, str, int]:
    """What :func:`operators.blend.blend` takes for a request, read from the learner's states
    as the server reads Redis: session, similar and bought shares of the recent items, the
    trending fills, the parameters, the learned retrieval, its cause and its event count."""
    sess = eng.session(user_id)
    history = recent_items(sess, b.recent) if sess is not None else []
    remind: tuple[float, ...] = ()
    if b.allow_repeats:
        remind = tuple(eng.remind_scores(len(history)) if b.calibrated_remind else
                       [b.remind_weight * b.remind_decay**r for r in range(len(history))])
    params = BlendParams(recent=b.recent, recency_decay=b.recency_decay,
                         bought_weight=b.bought_weight, vector_weight=b.vector_weight,
                         vector_temperature=b.vector_temperature, remind=remind,
                         allow_repeats=b.allow_repeats, pool=b.pool,
                         vector_min_events=b.vector_min_events)
    last = history[0] if history else None
    if sess is not None and sess.get("events"):
        last = sess["events"][-1][0]
    cat = eng.category(last) if (b.category_fill and last is not None) else None
    fills = [Fill(TRENDING_CATEGORY, cat, eng.trending_list(cat))] if cat is not None else []
    fills.append(Fill(TRENDING, "global", eng.trending_list()))
    similar = eng.neighbour_shares(keys.KIND_SIMILAR, history)
    bought = eng.neighbour_shares(keys.KIND_BOUGHT, history) if b.bought_weight > 0 else {}
    vector: Shares = ()
    if b.vector_weight > 0:
        retrieved = eng.vector_list(user_id, b.vector_pool, exclude, b.vector_min_events,
                                    b.vector_min_prior, session_id)
        vector = vector_shares(retrieved, b.vector_temperature)
    return (sess, similar, bought, fills, params, vector, eng.model_version(),
            eng.mf_events.get(user_id, 0))


def describe(cfg: EngineConfig, blend: Blend) -> dict[str, Any]:
    """The engine's settings as plain data, for the report."""
    return {
        "session": _fields(cfg.session), "similar": _fields(cfg.similar),
        "bought": _fields(cfg.bought), "trending": _fields(cfg.trending),
        "similar_recent": _fields(cfg.similar_recent) if cfg.similar_recent else None,
        "mf": cfg.mf.to_dict(), "blend": _fields(blend),
    }


def _fields(obj: Any) -> dict[str, Any]:
    return {name: getattr(obj, name) for name in obj.__dataclass_fields__}


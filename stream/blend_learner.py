"""The blend learner: the learned blend (:mod:`operators.learned_blend`) learned from live
traffic, beside the server, and published at ``recs:v1:model:blend`` for it.

For each sampled interest event (:func:`sampled`, :func:`operators.learned_blend.label_of`)
it reads what the homepage reads for that user (:mod:`serving.homepage_reads`, the server's
own read plan, with the server's rules and experiments and its learned-vector index), drops
from the session the event itself and everything at or after its time
(:func:`session_before`: the stream may have applied it already), builds the candidates the
hand-tuned blend would have answered and steps the model with the event's item as the label:
test-then-train, as ``recs eval`` does on a replay.

When the second similar-items list is on (``Settings.similar_recent_on``, the variable the
job publishes it by), the plan also reads the recent items' second lists, in the similar lists'
round trip, and the candidates carry their ``simr*`` features: the weights learned (and
published) then weigh them, as the server computes them from the same keys.

Reads are batched: the events read together walk the read plan in lockstep
(:func:`read_plans`), one MGET per round trip for all of them (three round trips, keys shared
by several events read once). This module holds the pure steps and the learner's state
(:class:`BlendLearner`); :mod:`stream.blend_learner_run` is the Kafka shell and the
``recs blend-learner`` command.

**Limits.** The state read is Redis when the events are read, not Redis just before each
event: the session is cut back to before the event, but a neighbour or trending list may
already count it (the race, docs/architecture.md). :func:`counts_event` marks such an event
*leaked* (a list read for it reflects its time or later); ``skip_leaked`` leaves it out. A
user whose session holds nothing before the event is not learned from (``recs eval``: a user
the stream has no session for).
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from operators import learned_blend
from operators.blend import BlendParams, Fill, Shares
from operators.config import BASKET_TYPES, SIMILAR_RECENT_HALF_LIFE_S
from operators.learned_blend import BlendModel, Example, LearnedBlendConfig
from schemas.events import Interaction, SchemaError, decode_interaction
from serving.experiments import Experiments
from serving.handlers import Options
from serving.homepage_reads import (
    CONTEXT_SCOPES,
    HomepageInputs,
    Read,
    Reads,
    Vectors,
    context_fill,
    context_keys,
    learned_events,
    list_shares,
    reads,
)
from serving.models import BLEND_UNREADABLE, decode_blend
from serving.params import DEFAULT_K
from state.keys import (
    KIND_TRENDING,
    NEIGHBOUR_KINDS,
    NEW_ARRIVALS_PREFIX,
    context_value,
    split_key,
)
from state.records import Envelope

log = logging.getLogger("stream.blend_learner")
SCALE: Final = 1 << 32  # CRC-32 values: the sample keeps those below share * SCALE

GetMany = Callable[[Sequence[str]], Awaitable[list[Envelope | None]]]


# ---- pure steps -------------------------------------------------------------------------

def check_share(share: float) -> float:
    """``share`` when it is a number in (0, 1]; else a ValueError naming it."""
    if isinstance(share, bool) or not isinstance(share, int | float) or not 0 < share <= 1:
        raise ValueError(f"stream.blend_learner: sample must be a number in (0, 1], "
                         f"got {share!r}")
    return float(share)


def sampled(event_id: str, share: float) -> bool:
    """Whether the event is learned: its id's CRC-32 below ``share`` of the range (stateless:
    every learner, and a restarted one, keeps the same events).

    >>> sampled("e1", 1.0), sampled("e1", 1e-9), [sampled(f"e{n}", 0.5) for n in range(6)]
    (True, False, [True, True, False, False, True, True])
    """
    return zlib.crc32(event_id.encode()) < share * SCALE


def session_before(session: Mapping[str, Any] | None, ts: int) -> dict[str, Any] | None:
    """The session value as it was before an event at ``ts``: its events, impressions,
    basket and purchases at or after ``ts`` dropped (an item bought or added to the basket
    before ``ts`` too stays); ``None`` when nothing is left.

    >>> s = {"session_id": "s", "last_ts": 5, "events": [["a", "view", 1],
    ...      ["b", "purchase", 3], ["c", "view", 5]], "basket": ["b"], "purchased": ["b"],
    ...      "shown": [["x", 1, 2], ["y", 1, 4]]}
    >>> before = session_before(s, 3)
    >>> before["events"], before["purchased"], before["basket"], before["shown"], before["last_ts"]
    ([['a', 'view', 1]], [], [], [['x', 1, 2]], 1)
    >>> session_before(s, 1) is None, session_before(None, 1) is None
    (True, True)
    """
    if not session:
        return None
    events = [e for e in session.get("events", ()) if e[2] < ts]
    shown = [e for e in session.get("shown", ()) if e[2] < ts]
    if not events and not shown:
        return None
    later = [e for e in session.get("events", ()) if e[2] >= ts]
    purchased = _kept(session.get("purchased", ()), events, later, {"purchase"})
    basket = _kept(session.get("basket", ()), events, later, BASKET_TYPES)
    return {**session, "events": events, "shown": shown, "purchased": purchased,
            "basket": basket, "last_ts": max((e[2] for e in events), default=0)}


def _kept(items: Iterable[str], earlier: Sequence[Sequence[Any]],
          later: Sequence[Sequence[Any]], types: Collection[str]) -> list[str]:
    """``items`` (bought, or in the basket) but those only a ``later`` event of ``types`` put
    there."""
    after = {e[0] for e in later if e[1] in types}
    before = {e[0] for e in earlier if e[1] in types}
    return [i for i in items if i in before or i not in after]


def parse(raw: bytes | str) -> Interaction | SchemaError:
    """An event of the clickstream, or the schema's error naming the field and the value."""
    try:
        return decode_interaction(raw)
    except SchemaError as exc:
        return exc


def resume(raw: bytes | None) -> tuple[BlendModel, str]:
    """The model to start from: the published value when readable (the model and a note),
    else the prior (and why). Never raises."""
    if raw is None:
        return learned_blend.initial(), "nothing published: starting from the prior"
    try:
        env, found = decode_blend(raw)
    except BLEND_UNREADABLE as exc:
        return learned_blend.initial(), f"unreadable published value ({exc!r}): starting " \
                                         "from the prior"
    except Exception as exc:  # orjson's errors and anything else: never crash on it
        return learned_blend.initial(), f"unreadable published value ({exc!r}): starting " \
                                         "from the prior"
    if found is None:
        return learned_blend.initial(), f"published value deleted at version {env.version}: " \
                                         "starting from the prior"
    model, _cfg = found
    return model, f"resumed from version {env.version} labelled={model.labelled}"


async def read_plans(plans: Sequence[Reads], get_many: GetMany,
                     first: Callable[[int, list[Envelope | None]], list[Envelope | None] | None],
                     then: Callable[[int, Read, list[Envelope | None]], None] | None = None,
                     ) -> list[HomepageInputs | None]:
    """Drive every plan in lockstep: each round trip's keys of all plans in one ``get_many``
    (each key once). ``first(i, envelopes)`` sees plan ``i``'s first answer and may replace it,
    or drop the plan (``None``: its result stays ``None``); ``then(i, read, envelopes)`` sees
    each later one."""
    out: list[HomepageInputs | None] = [None] * len(plans)
    pending: dict[int, Read] = {i: next(p) for i, p in enumerate(plans)}
    stage = 0
    while pending:
        keys = list(dict.fromkeys(k for read in pending.values() for k in read.keys))
        by_key = dict(zip(keys, await get_many(keys), strict=True))
        after: dict[int, Read] = {}
        for i, read in pending.items():
            found = [by_key[k] for k in read.keys]
            if stage == 0:
                replaced = first(i, found)
                if replaced is None:
                    plans[i].close()
                    continue
                found = replaced
            elif then is not None:
                then(i, read, found)
            try:
                after[i] = plans[i].send(found)
            except StopIteration as done:
                out[i] = done.value
        pending, stage = after, stage + 1
    return out


def counts_event(key: str, env: Envelope | None, ts: int) -> bool:
    """Whether a neighbour or trending list read for an event at ``ts`` may already count it
    (its ``as_of`` is the newest event time it reflects; new-arrivals lists follow the
    catalogue, not the events).

    >>> from state.keys import similar_key, new_arrivals_key
    >>> env = Envelope(1, 100, {"items": []})
    >>> counts_event(similar_key("a"), env, 100), counts_event(similar_key("a"), env, 101)
    (True, False)
    >>> counts_event(new_arrivals_key(None), env, 50), counts_event(similar_key("a"), None, 0)
    (False, False)
    """
    if env is None or env.as_of < ts:
        return False
    kind, entity = split_key(key)
    return kind in NEIGHBOUR_KINDS or \
        (kind == KIND_TRENDING and not entity.startswith(NEW_ARRIVALS_PREFIX))


class _Memo:
    """The derived values of one batch's envelopes (shared lists decoded once per batch)."""

    def __init__(self) -> None:
        self._shares: dict[int, tuple[Envelope, Shares]] = {}
        self._fills: dict[tuple[int, ...], tuple[list[Any], Fill]] = {}

    def shares(self, env: Envelope) -> Shares:
        hit = self._shares.get(id(env))
        if hit is None:
            hit = self._shares[id(env)] = (env, list_shares(env))
        return hit[1]

    def context_fill(self, ctx_keys: Sequence[tuple[str, str]],
                     ctx_envs: Sequence[Envelope | None], global_env: Envelope | None) -> Fill:
        envs = [*ctx_envs, global_env]
        key = tuple(id(e) for e in envs)
        hit = self._fills.get(key)
        if hit is None:
            hit = self._fills[key] = (envs, context_fill(ctx_keys, ctx_envs, global_env))
        return hit[1]


# ---- the learner ------------------------------------------------------------------------

@dataclass(slots=True)
class Counts:
    """What an SRE reads in the learner's log lines."""

    seen: int = 0            # events polled
    malformed: int = 0       # rejected by the schema (the job dead-letters them)
    interest: int = 0        # events that label the blend (label_of)
    sampled: int = 0         # of them, in the sample
    no_session: int = 0      # sampled, but nothing in the session before the event
    leaked: int = 0          # read a neighbour or trending list that already counts the event
                             # (its as_of at or after the event's time: the race)
    skipped_leaked: int = 0  # of them, not learned (skip_leaked)
    unread: int = 0          # sampled, not learned: Redis did not answer their batch's reads
    stepped: int = 0         # examples given to the model (it compares both orders on them)
    publishes: int = 0
    last_publish_version: int | None = None
    last_publish_as_of: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


@dataclass
class BlendLearner:
    """The model and how each sampled event becomes an example (module docstring)."""

    experiments: Experiments
    share: float = 1.0
    cfg: LearnedBlendConfig = field(default_factory=LearnedBlendConfig)
    model: BlendModel = field(default_factory=learned_blend.initial)
    vectors: Vectors | None = None
    counts: Counts = field(default_factory=Counts)
    examples: list[Example] | None = None  # kept when a list is given (tests, the bench)
    skip_leaked: bool = False  # learn only from events none of whose lists counts them yet
    # read the recent items' second similar-items lists (Settings.similar_recent_on; by default
    # as the engine's default publishes them): the weights learned then include simr*, the
    # features the server computes from the same keys
    similar_recent: bool = SIMILAR_RECENT_HALF_LIFE_S > 0

    def __post_init__(self) -> None:
        self.share = check_share(self.share)

    def select(self, raws: Iterable[bytes | str]) -> list[Interaction]:
        """The sampled interest events of a poll batch, in order; malformed ones counted and
        logged (field and value), never sent anywhere: the job dead-letters them."""
        kept: list[Interaction] = []
        for raw in raws:
            self.counts.seen += 1
            event = parse(raw)
            if isinstance(event, SchemaError):
                self.counts.malformed += 1
                log.warning("blend learner: skipped a malformed event field=%s value=%r (%s)",
                            event.field, event.value, event)
                continue
            if learned_blend.label_of(event) is None:
                continue
            self.counts.interest += 1
            if sampled(event.event_id, self.share):
                kept.append(event)
        self.counts.sampled += len(kept)
        return kept

    async def learn(self, events: Sequence[Interaction], get_many: GetMany) -> int:
        """Read every event's inputs (three round trips for all), then step the model on each
        in order. Returns the examples stepped."""
        memo = _Memo()
        plans = [self.plan(e, memo) for e in events]

        def first(i: int, found: list[Envelope | None]) -> list[Envelope | None] | None:
            env, uvec = found
            before = session_before(env.data if env is not None else None, events[i].ts)
            if env is None or before is None:
                self.counts.no_session += 1
                return None
            return [Envelope(env.version, env.as_of, before), uvec]

        leaked: set[int] = set()

        def then(i: int, read: Read, found: list[Envelope | None]) -> None:
            if i not in leaked and any(counts_event(k, e, events[i].ts)
                                       for k, e in zip(read.keys, found, strict=True)):
                leaked.add(i)

        inputs = await read_plans(plans, get_many, first, then)
        self.counts.leaked += len(leaked)
        stepped = 0
        for n, (event, inp) in enumerate(zip(events, inputs, strict=True)):
            target = learned_blend.label_of(event)
            if inp is None or target is None:
                continue
            if self.skip_leaked and n in leaked:
                self.counts.skipped_leaked += 1
                continue
            params = self._params(event)
            cands = learned_blend.candidates(
                inp.session, inp.similar, inp.bought, inp.fills, params, self.cfg,
                vector=inp.vector, vector_events=learned_events(inp.uvec),
                similar_recent=inp.similar_recent, now=event.ts)
            example = Example(target, cands, event.ts)
            self.model, outcome = learned_blend.step(self.model, example, self.cfg)
            if self.examples is not None:
                self.examples.append(example)
            stepped += outcome is not None
        self.counts.stepped += stepped
        return stepped

    def plan(self, event: Interaction, memo: _Memo | None = None) -> Reads:
        """The server's homepage read plan for the event's user, as a request just before the
        event would have run it (no category, the event's country and device, its time)."""
        ctx = {d: v for d in CONTEXT_SCOPES
               if isinstance(v := event.context.get(d), str) and context_value(v) is not None}
        pool = Options(DEFAULT_K, frozenset(), None, ctx, False, event.user_id).pool
        return reads(event.user_id, self._params(event), category=None,
                     ctx_keys=context_keys(ctx, event.ts), exclude=(), pool=pool,
                     models=self.vectors, derive=memo or _Memo(),
                     similar_recent=self.similar_recent)

    def _params(self, event: Interaction) -> BlendParams:
        """The blend parameters the server uses for the user (its rules, its A/B variant)."""
        return self.experiments.assign("homepage", event.user_id).rules.blend

    @property
    def warm(self) -> bool:
        return learned_blend.is_warm(self.model, self.cfg)

"""The learned models the server uses, kept fresh from Redis by a background refresher.

The stream publishes (``stream/views.py``, layout in :mod:`state.keys`):

* ``recs:v1:model:mf``: the collaborative model's header (``version``, ``dim``, counts, ...);
* ``recs:v1:itemvec:{item}``: an item's vector ``{"x", "b", "src"}`` (``None``: deleted), every
  write also logged in the changelog sorted set that
  :meth:`~state.redis_store.AsyncReader.vector_changes` follows;
* ``recs:v1:uservec:{user}``: a user's vector (read per request by the homepage, not here);
* ``recs:v1:model:ranker``: the whole ranker snapshot, envelope version = examples learned;
* ``recs:v1:model:blend``: the learned blend (:mod:`operators.learned_blend`: weights, warm-up
  counters and config), envelope version = labelled events learned.

:class:`ModelRefresher` owns what requests read: a :class:`~serving.vectors.VectorIndex` of
``[x, b]`` per item (queried with ``[user.x, 1]``: score = user·item + item bias) and the loaded
:class:`~operators.ranker.Ranker`. Every ``refresh_ms`` (1 s) one :meth:`~ModelRefresher.refresh`:

1. reads the ``mf`` header (its ``dim`` fixes the index dimension, ``dim + 1``; without a header
   the first vector's length does). A new dimension (the model retrained with other factors)
   builds a new index from the whole changelog beside the old one, which serves until the new
   one is complete;
2. follows the changelog from the last version seen (inclusive, so writes that shared the last
   version with an earlier page are not missed; the version kept per item skips those already
   applied), page by page until exhausted, MGETs the changed vectors and upserts them (removes
   the deleted ones). Index updates run on the event loop in chunks of :data:`UPSERT_CHUNK`
   with a yield between chunks (FAISS is not safe to search while another thread writes);
3. peeks at the ranker key's envelope head (version and event time, the first bytes of the
   value) and only when it changed reads the snapshot and restores it in a worker thread, so a
   large snapshot neither travels every second nor blocks the loop while it is decoded;
4. the same for the learned blend (a few dozen weights): the homepage orders its candidates by
   it when it is warm (:func:`operators.learned_blend.serve`), by the hand-tuned blend when it
   is cold, absent or unreadable.

The first refresh loads everything (changelog from 0). When Redis is down a refresh fails,
logs once per outage, keeps the index and ranker it has and is retried on the next tick. An
absent key (Redis restarted empty) keeps what was loaded; a tombstone deletes it.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import faiss
import numpy as np
import redis.exceptions

from operators import learned_blend
from operators.learned_blend import BlendModel, LearnedBlendConfig
from operators.ranker import Ranker
from serving.model_source import ModelSource, RedisModelSource
from serving.vectors import Vec, VectorIndex
from state.keys import MODEL_BLEND, MODEL_MF, MODEL_RANKER, itemvec_key, model_key
from state.records import Envelope, decode_envelope

log = logging.getLogger("serving")
__all__ = ["ModelRefresher", "ModelSource", "RedisModelSource", "vector_of"]

DEFAULT_REFRESH_MS: Final = 1000
# Sizes bound the event loop's longest stretch without a yield (measured with one FAISS thread,
# CPU time, 50k items of 16 dimensions: a 10k-entry changelog page alone took 39 ms to parse)
PAGE: Final = 1_000         # changelog entries per read
MGET_CHUNK: Final = 500     # item vectors per MGET
UPSERT_CHUNK: Final = 500   # vectors per index update between two yields to the event loop
FAISS_THREADS: Final = 1    # OpenMP threads spin against the loop and the other workers

RANKER_WARM: Final = "warm"
RANKER_COLD: Final = "cold"
RANKER_ABSENT: Final = "absent"

# errors that mean "Redis is not reachable now", retried on the next tick
REDIS_DOWN: Final = (redis.exceptions.RedisError, OSError, TimeoutError)
STOP_TIMEOUT_S: Final = 5.0


@dataclass(frozen=True, slots=True)
class Header:
    """A published model value: envelope version and event time, and its data."""

    version: int
    as_of: int
    data: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class ModelGauges:
    """What ``/metrics`` exports about the loaded models (see :mod:`serving.metrics`)."""

    versions: Mapping[str, int]
    as_of_ms: Mapping[str, int]
    ranker_auc: float | None
    ranker_log_loss: float | None
    vectors: int


@dataclass(slots=True)
class _Vectors:
    """One index and how far it followed the changelog."""

    dim: int | None                     # index dimension (model dim + 1); None: not known yet
    index: VectorIndex | None = None
    since: int = 0                      # changelog version to read from (inclusive)
    seen: dict[str, int] = field(default_factory=dict)  # item -> version applied
    skipped: int = 0                    # malformed vectors or of another dimension
    boundary_count: int | None = None   # entries at ``since`` when last read through by offset


def vector_of(data: Any, with_bias: bool = True) -> Vec | None:
    """``[x, b]`` (an item) or ``[x, 1]`` (``with_bias=False``: a user's query) as float32, or
    ``None`` when ``data`` is not a vector value (no ``x`` list of finite numbers).

    >>> vector_of({"x": [0.5, -1], "b": 0.25}).tolist(), vector_of({"x": [2]}, False).tolist()
    ([0.5, -1.0, 0.25], [2.0, 1.0])
    >>> vector_of({"x": []}), vector_of({"x": ["a"], "b": 0}), vector_of(None)
    (None, None, None)
    """
    if not isinstance(data, Mapping):
        return None
    x = data.get("x")
    last = data.get("b", 0.0) if with_bias else 1.0
    if not isinstance(x, list) or not x or isinstance(last, bool) or \
            not isinstance(last, int | float):
        return None
    try:
        vec = np.array([*x, last], dtype=np.float32)
    except (TypeError, ValueError):
        return None
    return vec if vec.ndim == 1 and bool(np.isfinite(vec).all()) else None


class ModelRefresher:
    """The loaded models and the task that keeps them fresh (module docstring). Requests read
    :meth:`search`, :meth:`neighbours`, :attr:`ranker`; one refresh runs at a time."""

    def __init__(self, source: ModelSource | None = None, *,
                 refresh_ms: int = DEFAULT_REFRESH_MS, page: int = PAGE,
                 layout: str = "ivf") -> None:
        if refresh_ms < 1 or page < 1:
            raise ValueError(f"serving.models: need refresh_ms >= 1 and page >= 1, "
                             f"got {refresh_ms}, {page}")
        self.source = source
        self.refresh_ms = refresh_ms
        self.page = page
        self.layout = layout
        self.mf: Header | None = None
        self.ranker: Ranker | None = None
        self.ranker_head: tuple[int, int] | None = None  # of the loaded ranker
        self.ranker_stats: Mapping[str, Any] = {}
        self.ranker_warm = False
        self._ranker_tried: tuple[int, int] | None = None  # last head read (loaded or not)
        self.blend: BlendModel | None = None  # the learned blend (None: the hand-tuned one)
        self.blend_cfg = LearnedBlendConfig()
        self.blend_head: tuple[int, int] | None = None
        self._blend_tried: tuple[int, int] | None = None
        self._vec = _Vectors(None)
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._ok = True
        self.refreshes = 0
        self.failures = 0
        self.generation = 0  # bumped whenever what requests read changes (answer cache)

    # ---- what requests read ---------------------------------------------------------------
    @property
    def vectors(self) -> int:
        idx = self._vec.index
        return 0 if idx is None else len(idx)

    @property
    def dim(self) -> int | None:
        """Dimension of the index (the model's ``dim + 1``), ``None`` before any vector."""
        return self._vec.dim

    @property
    def ranker_state(self) -> str:
        if self.ranker is None:
            return RANKER_ABSENT
        return RANKER_WARM if self.ranker_warm else RANKER_COLD

    def search(self, user_data: Any, k: int,
               exclude: Collection[str] = ()) -> list[tuple[str, float]]:
        """The ``k`` items scoring highest for a user's vector value (``{"x", "b"}``), best
        first; nothing when the index is empty or of another dimension."""
        idx = self._vec.index
        query = vector_of(user_data, with_bias=False)
        if idx is None or query is None or len(idx) == 0 or len(query) != idx.dim:
            return []
        return idx.search(query, k, exclude)

    def neighbours(self, item_id: str, k: int,
                   exclude: Collection[str] = ()) -> list[tuple[str, float]]:
        """Items a user with this item's taste would score highest: the index queried with
        ``[x_item, 1]`` (``x·x_j + b_j``). Not :meth:`VectorIndex.similar`, whose query
        ``[x, b]`` adds ``b·b_j``: for an item of negative bias that favours unpopular items."""
        idx = self._vec.index
        vec = idx.vector(item_id) if idx is not None else None
        if idx is None or vec is None:
            return []
        query = vec.copy()
        query[-1] = 1.0
        return idx.search(query, k, {*exclude, item_id})

    def has_vector(self, item_id: str) -> bool:
        idx = self._vec.index
        return idx is not None and item_id in idx

    def gauges(self) -> ModelGauges:
        versions: dict[str, int] = {}
        as_of: dict[str, int] = {}
        if self.mf is not None:
            versions[MODEL_MF], as_of[MODEL_MF] = self.mf.version, self.mf.as_of
        if self.ranker is not None and self.ranker_head is not None:
            versions[MODEL_RANKER], as_of[MODEL_RANKER] = self.ranker_head
        if self.blend is not None and self.blend_head is not None:
            versions[MODEL_BLEND], as_of[MODEL_BLEND] = self.blend_head
        stats = self.ranker_stats if self.ranker is not None else {}
        return ModelGauges(versions, as_of, _number(stats.get("auc")),
                           _number(stats.get("log_loss")), self.vectors)

    # ---- the background task --------------------------------------------------------------
    def start(self, source: ModelSource) -> None:
        """Refresh now and then every ``refresh_ms`` until :meth:`stop`."""
        faiss.omp_set_num_threads(FAISS_THREADS)  # process-wide: this process serves
        self.source = source
        self._stopping = False
        if self._task is None:
            self._task = asyncio.ensure_future(self._run())

    async def stop(self) -> None:
        """Cancel the refresher and wait for it, at most :data:`STOP_TIMEOUT_S`. A cancellation
        that lands inside a Redis call can be swallowed by the client (the task then carries on),
        so the loop also checks a flag: shutdown never waits on a refresher that did not stop."""
        task, self._task = self._task, None
        self._stopping = True
        if task is not None:
            task.cancel()
            done, _ = await asyncio.wait({task}, timeout=STOP_TIMEOUT_S)
            if not done:
                log.warning("serving.models: the refresher did not stop within %.0f s",
                            STOP_TIMEOUT_S)

    async def _run(self) -> None:
        while not self._stopping:
            await self.refresh()
            await asyncio.sleep(self.refresh_ms / 1000)

    async def refresh(self) -> bool:
        """One pass (module docstring); False when it could not complete (Redis down, or a
        bug, logged with its traceback). What was loaded before stays in use either way."""
        source = self.source
        if source is None:
            return False
        async with self._lock:
            try:
                await self._refresh(source)
            except REDIS_DOWN as exc:
                self.failures += 1
                if self._ok:
                    log.warning("serving.models: refresh failed, keeping the loaded models "
                                "vectors=%s ranker=%s error=%r", self.vectors,
                                self.ranker_state, exc)
                    self._ok = False
                return False
            except Exception:
                self.failures += 1
                log.exception("serving.models: refresh failed, keeping the loaded models")
                return False
        if not self._ok:
            log.info("serving.models: refresh works again vectors=%s", self.vectors)
            self._ok = True
        self.refreshes += 1
        return True

    async def _refresh(self, source: ModelSource) -> None:
        (mf_env,) = await source.get_many([model_key(MODEL_MF)])
        if mf_env is not None and isinstance(mf_env.data, Mapping):
            if self.mf is None or (self.mf.version, self.mf.as_of) != (mf_env.version,
                                                                       mf_env.as_of):
                self.generation += 1
            self.mf = Header(mf_env.version, mf_env.as_of, mf_env.data)
        dim = self.mf.data.get("dim") if self.mf is not None else None
        want = dim + 1 if isinstance(dim, int) and not isinstance(dim, bool) and dim > 0 \
            else None
        current = self._vec
        if want is not None and current.dim is not None and current.dim != want:
            fresh = _Vectors(want)  # built beside the old index, which serves until then
            await self._follow(source, fresh)
            log.info("serving.models: rebuilt the vector index dim=%s->%s vectors=%s",
                     current.dim, want, 0 if fresh.index is None else len(fresh.index))
            self._vec = fresh
            self.generation += 1
        else:
            if current.dim is None and want is not None:
                current.dim = want
            await self._follow(source, current)
        await self._refresh_ranker(source)
        await self._refresh_blend(source)

    async def _follow(self, source: ModelSource, st: _Vectors) -> None:
        """Apply every changelog entry from ``st.since`` on, page by page. A page ending on a
        newer version moves the cursor there (inclusive: the rest of that version comes with
        the next page); a full page all at the cursor's version is read through by offset."""
        while True:
            since = st.since
            changes = await source.vector_changes(since, self.page)
            await self._apply(source, st, changes)
            if changes and changes[-1][1] > since:
                st.since, st.boundary_count = changes[-1][1], None
            if len(changes) < self.page:
                return
            if st.since == since and not await self._through_version(source, st):
                return  # a full page all at ``since``, read through; nothing newer

    async def _through_version(self, source: ModelSource, st: _Vectors) -> bool:
        """Read every entry at the cursor's version ``v`` by offset (more than a page was
        written at ``v``). True when the cursor could move past ``v``: a newer version is in
        the log, so ``v``'s writes are complete (the writer's versions never decrease, the
        assumption the inclusive changelog itself rests on). While ``v`` is the newest, the
        entries at ``v`` are read through again only when their count changed."""
        v = st.since
        newer = await source.vector_changes(v + 1, 1)
        count = await source.count_at(v)
        if not newer and count == st.boundary_count:
            return False
        offset = 0
        while True:
            members = await source.members_at(v, offset, self.page)
            await self._apply(source, st, [(m, v) for m in members])
            offset += len(members)
            if len(members) < self.page:
                break
        st.boundary_count = count
        if newer:
            st.since, st.boundary_count = v + 1, None
        return bool(newer)

    async def _apply(self, source: ModelSource, st: _Vectors,
                     changes: Sequence[tuple[str, int]]) -> None:
        """MGET the entries not applied yet and update the index with them."""
        todo = [(item, v) for item, v in changes if v > st.seen.get(item, -1)]
        for start in range(0, len(todo), MGET_CHUNK):
            chunk = todo[start:start + MGET_CHUNK]
            envs = await source.get_many([itemvec_key(item) for item, _ in chunk])
            upserts: dict[str, Vec] = {}
            removes: list[str] = []
            for (item, version), env in zip(chunk, envs, strict=True):
                st.seen[item] = max(version, env.version) if env is not None else version
                if env is None:
                    removes.append(item)
                    continue
                vec = vector_of(env.data)
                if vec is None or (st.dim is not None and len(vec) != st.dim):
                    st.skipped += 1
                    removes.append(item)  # its older vector, if any, is no longer the model's
                    continue
                if st.dim is None:
                    st.dim = len(vec)
                upserts[item] = vec
            if st.index is None and upserts and st.dim is not None:
                st.index = VectorIndex(st.dim, layout=self.layout)
            if st.index is not None and (upserts or removes):
                self.generation += 1
                await _update(st.index, upserts, removes)
                self.generation += 1  # again: requests may have read it between two chunks

    async def _refresh_ranker(self, source: ModelSource) -> None:
        fetched = await _fetch_if_changed(source, model_key(MODEL_RANKER), self._ranker_tried)
        if fetched is None:
            return
        head, raw = fetched
        self._ranker_tried = head
        try:
            env, ranker = await asyncio.to_thread(_restore_ranker, raw)
        except (ValueError, KeyError, TypeError) as exc:
            log.error("serving.models: cannot restore the ranker snapshot version=%s, keeping "
                      "the loaded one (%s) error=%s", head[0], self.ranker_state, exc)
            return
        if ranker is None:
            log.info("serving.models: ranker deleted version=%s", env.version)
            self.ranker, self.ranker_head, self.ranker_stats = None, None, {}
            self.ranker_warm = False
            self.generation += 1
            return
        before = self.ranker_state
        self.ranker_stats = ranker.stats()
        self.ranker_warm = ranker.is_warm()
        self.ranker, self.ranker_head = ranker, (env.version, env.as_of)
        self._ranker_tried = self.ranker_head
        self.generation += 1
        # a new snapshot comes every emit interval: say so only when the state changes
        log.log(logging.INFO if self.ranker_state != before else logging.DEBUG,
                "serving.models: ranker loaded version=%s state=%s auc=%s", env.version,
                self.ranker_state, self.ranker_stats.get("auc"))


    async def _refresh_blend(self, source: ModelSource) -> None:
        fetched = await _fetch_if_changed(source, model_key(MODEL_BLEND), self._blend_tried)
        if fetched is None:
            return
        head, raw = fetched
        self._blend_tried = head
        try:
            env, found = decode_blend(raw)
        except BLEND_UNREADABLE as exc:
            log.error("serving.models: cannot read the learned blend version=%s, keeping the "
                      "loaded one error=%s", head[0], exc)
            return
        if found is None:
            log.info("serving.models: learned blend deleted version=%s", env.version)
            self.blend, self.blend_head = None, None
            self.generation += 1
            return
        model, cfg = found
        warm_before = self.blend is not None and learned_blend.is_warm(self.blend,
                                                                        self.blend_cfg)
        self.blend, self.blend_cfg, self.blend_head = model, cfg, (env.version, env.as_of)
        self.generation += 1
        warm = learned_blend.is_warm(model, cfg)
        log.log(logging.INFO if warm != warm_before else logging.DEBUG,
                "serving.models: learned blend loaded version=%s warm=%s labelled=%s",
                env.version, warm, model.labelled)


async def _update(index: VectorIndex, upserts: Mapping[str, Vec],
                  removes: Sequence[str]) -> None:
    """Apply to the index in chunks, yielding to the event loop between them."""
    if removes:
        index.remove(removes)
    names = list(upserts)
    for start in range(0, len(names), UPSERT_CHUNK):
        if start or removes:
            await asyncio.sleep(0)
        index.upsert({n: upserts[n] for n in names[start:start + UPSERT_CHUNK]})


def _object_envelope(raw: bytes, what: str) -> tuple[Envelope, Mapping[str, Any] | None]:
    """A model's envelope and its value: an object, or ``None`` when the model was deleted;
    a ValueError naming ``what`` it is when the value is anything else."""
    env = decode_envelope(raw)
    if env.data is None:
        return env, None
    if not isinstance(env.data, Mapping):
        raise ValueError(f"{what} is a {type(env.data).__name__}, not an object")
    return env, env.data


def _restore_ranker(raw: bytes) -> tuple[Envelope, Ranker | None]:
    """Decode and restore a ranker snapshot (in a worker thread: it may be large)."""
    env, doc = _object_envelope(raw, "snapshot")
    return env, Ranker.restore(doc) if doc is not None else None


#: What :func:`decode_blend` raises on a value it cannot read.
BLEND_UNREADABLE: Final = (ValueError, KeyError, TypeError)


def decode_blend(raw: bytes) -> tuple[Envelope, tuple[BlendModel, LearnedBlendConfig] | None]:
    """The envelope stored at ``recs:v1:model:blend`` and the learned blend in it (``None``:
    deleted); raises one of :data:`BLEND_UNREADABLE` when the value cannot be read.

    >>> from state.records import Update, encode_envelope
    >>> doc = learned_blend.published(learned_blend.initial(), LearnedBlendConfig())
    >>> env, (model, cfg) = decode_blend(encode_envelope(Update("k", 3, 9, doc)))
    >>> env.version, model == learned_blend.initial(), cfg == LearnedBlendConfig()
    (3, True, True)
    """
    env, doc = _object_envelope(raw, "value")
    return env, learned_blend.from_published(doc) if doc is not None else None


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


async def _fetch_if_changed(source: ModelSource, key: str, tried: tuple[int, int] | None,
                            ) -> tuple[tuple[int, int], bytes] | None:
    """The head and bytes of the model at ``key`` when its head is not ``tried``; ``None`` when
    it is absent (keep what was loaded) or unchanged."""
    head = await source.head(key)
    if head is None or head == tried:
        return None
    raw = await source.get_raw(key)
    return None if raw is None else (head, raw)

"""Data of the learned-model tests: item and user vectors, the ``mf`` header and ranker
snapshots, written the way the stream writes them (``stream.views`` updates applied by
``RedisStore.apply``, which also logs every item-vector write in the changelog)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from operators.ranker import Example, Labels, Ranker, RankerConfig
from state.keys import MODEL_MF, MODEL_RANKER, item_key
from state.records import Update
from state.redis_store import RedisStore
from stream.views import item_vector_update, model_update, user_vector_update
from tests.serving.kit import NOW

MF_VERSION = 40
MF_AS_OF = NOW - 30_000
DIM = 2

# score = user.x · item.x + item.b; the user u_vec ([1, 0.3]) scores vnew 1.16, i2 1.0,
# i1 0.93, i4 0.65, i3 0.3, i6 -1.0
ITEM_VECTORS: dict[str, tuple[list[float], float]] = {
    "i1": ([0.9, 0.1], 0.0),
    "i2": ([1.0, 0.0], 0.0),
    "i3": ([0.0, 1.0], 0.0),
    "i4": ([0.5, 0.5], 0.0),
    "i6": ([-1.0, 0.0], 0.0),
}
NEW_ITEM = "vnew"  # a brand-new item: a content vector, no co-visitation, no interactions
NEW_VECTOR = ([1.0, 0.2], 0.1)
USER = "u_vec"  # no session, only a learned vector
USER_VECTOR = [1.0, 0.3]


def header(version: int = MF_VERSION, dim: int = DIM, as_of: int = MF_AS_OF) -> Update:
    return model_update(MODEL_MF, {"version": version, "dim": dim, "items": 6, "users": 2,
                                   "events": 1000, "as_of": as_of}, version=version,
                        as_of=as_of)


def item_vectors(vectors: dict[str, tuple[list[float], float]], version: int = MF_VERSION,
                 src: str = "cf") -> list[Update]:
    return [item_vector_update(i, x, b, version=version, as_of=MF_AS_OF, src=src)
            for i, (x, b) in vectors.items()]


LEARNED = 40          # events learned from u_vec and u1: past the blend's gate (30)
LEARNED_TOO_FEW = 3   # ...and from u_young: its vector does not vote yet
YOUNG_USER = "u_young"


def publish_model(store: RedisStore) -> None:
    """The header, the vectors of the catalogue items and u_vec's (and u1's) user vector."""
    store.apply([header(), *item_vectors(ITEM_VECTORS),
                 user_vector_update(USER, USER_VECTOR, 0.2, version=MF_VERSION,
                                    as_of=MF_AS_OF, events=LEARNED),
                 user_vector_update("u1", [0.0, 1.0], 0.0, version=MF_VERSION,
                                    as_of=MF_AS_OF, events=LEARNED),
                 user_vector_update(YOUNG_USER, USER_VECTOR, 0.2, version=MF_VERSION,
                                    as_of=MF_AS_OF, events=LEARNED_TOO_FEW)])


def publish_new_item(store: RedisStore, version: int = MF_VERSION + 1, *,
                     catalogue: bool = True) -> None:
    ups = item_vectors({NEW_ITEM: NEW_VECTOR}, version, src="content")
    if catalogue:
        ups.append(Update(item_key(NEW_ITEM), 1, NOW - 5_000,
                          {"item_id": NEW_ITEM, "title": "Fresh Kettle", "category": "kitchen"}))
    store.apply(ups)


def delete_item(store: RedisStore, item: str, version: int) -> None:
    store.apply([item_vector_update(item, None, 0.0, version=version, as_of=MF_AS_OF)])


# ---- the ranker ----------------------------------------------------------------------------

CONTEXT = (("placement", "homepage"),)


def planted_ranker(liked: str, others: Sequence[str], *, rounds: int = 150,
                   cfg: RankerConfig | None = None) -> Ranker:
    """A ranker taught that ``liked`` is clicked on the homepage and ``others`` never are, by
    many users; warm with these thresholds."""
    ranker = Ranker(cfg or RankerConfig(warm_positives=20, warm_negatives=60, min_auc=0.6,
                                        lr=0.1))
    shown = [liked, *others]
    for n in range(rounds):
        user = f"t{n % 40}"
        ts = NOW - 3_600_000 + n * 1000
        slots = shown[n % len(shown):] + shown[:n % len(shown)]  # every item in every slot
        ranker.observe(Labels(tuple(_example(user, item, slot, ts, item == liked, n)
                                    for slot, item in enumerate(slots, start=1))))
    return ranker


def _example(user: str, item: str, slot: int, ts: int, label: bool, n: int) -> Example:
    return Example(user, item, "session", CONTEXT, ts, ts + 1_800_000, slot, label, 1.0,
                   "click" if label else "negative", f"r{n}", None)


def publish_ranker(store: RedisStore, ranker: Ranker, as_of: int = NOW - 60_000) -> int:
    version = int(ranker.stats()["examples"])
    store.apply([model_update(MODEL_RANKER, ranker.snapshot(), version=version, as_of=as_of)])
    return version


def samples(text: str) -> dict[str, float]:
    return {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
            for line in text.splitlines() if line and not line.startswith("#")}


def sources(items: Iterable[dict[str, Any]]) -> dict[str, str]:
    return {i["item_id"]: i["source"] for i in items}

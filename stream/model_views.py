"""What the online models publish and how their inputs are applied, without PyFlink: shared
by the Flink shells (``stream/models.py``) and the reference runner (``stream/reference.py``)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict
from typing import Any, Final

import orjson

from operators import learned_blend, ranker
from operators.learned_blend import BlendModel, LearnedBlendConfig
from operators.ranker_state import RankerModel
from operators.vector_model import Publication, VectorModel
from schemas.events import decode_item, interaction_from_canonical
from state import keys
from state.records import Update
from stream import views

EVENT_TAG: Final = "e"  # log entries: a tag character, then the input's JSON
ITEM_TAG: Final = "i"
LABELS_TAG: Final = "l"
BATCH_TAG: Final = "b"  # a batch of events from the JVM feed: "{skipped}\n{event}\n{event}..."


def encode_batch(skipped: int, bodies: str) -> str:
    """A :data:`BATCH_TAG` log entry: the events the feed skipped, then the newline-joined
    canonical events it kept (canonical JSON holds no raw newline)."""
    return f"{skipped}\n{bodies}"


def vector_model_step(model: VectorModel, tag: str, body: str) -> Any:
    if tag == EVENT_TAG:
        return model.learn(interaction_from_canonical(orjson.loads(body)))
    if tag == BATCH_TAG:
        skipped, _, events = body.partition("\n")
        model.skip(int(skipped))
        for line in events.split("\n") if events else ():
            model.learn(interaction_from_canonical(orjson.loads(line)))
        return None
    return model.upsert(decode_item(body))


def ranker_model_step(model: RankerModel, tag: str, body: str) -> Any:
    if tag == LABELS_TAG:
        return model.observe(decode_labels(body))
    return model.upsert(decode_item(body))


def publication_updates(pub: Publication) -> Iterator[Update]:
    """Every vector of one publication, then the header (so a reader that sees the header's
    version can find every vector of that version)."""
    for item, vec, bias, src in pub.items:
        yield views.item_vector_update(item, vec, bias, version=pub.version, as_of=pub.as_of,
                                       src=src)
    for user, uvec, ubias, n in pub.users:
        yield views.user_vector_update(user, uvec, ubias, version=pub.version, as_of=pub.as_of,
                                       events=n)
    yield views.model_update(keys.MODEL_MF, pub.header, version=pub.version, as_of=pub.as_of)


def ranker_updates(model: RankerModel) -> Iterator[Update]:
    doc = model.publication()
    yield views.model_update(keys.MODEL_RANKER, doc, version=model.version, as_of=model.as_of)


def blend_updates(model: BlendModel, cfg: LearnedBlendConfig) -> Iterator[Update]:
    """The learned blend (:mod:`stream.blend_learner`): version = labelled events learned."""
    yield views.model_update(keys.MODEL_BLEND, learned_blend.published(model, cfg),
                             version=model.labelled, as_of=model.as_of)


def encode_labels(labels: ranker.Labels) -> str:
    return orjson.dumps({"examples": [asdict(ex) for ex in labels.examples],
                         "ignored": labels.ignored}).decode()


def decode_labels(raw: str) -> ranker.Labels:
    doc = orjson.loads(raw)
    examples = tuple(ranker.Example(**{**ex, "context": tuple(tuple(kv) for kv in ex["context"])})
                     for ex in doc["examples"])
    return ranker.Labels(examples, doc["ignored"])

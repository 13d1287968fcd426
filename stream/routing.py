"""Which operators an event goes to: the routing the topology and the reference runner share.

Pure and light on purpose: :mod:`stream.functions` imports this module, and every Python
operator of the job imports that one, so nothing here may pull in numpy, scipy or River (see
``stream/job.py`` on why the counting operators must open without them).
"""

from __future__ import annotations

from collections.abc import Callable

from operators.config import IMPRESSION, EngineConfig
from operators.mf_config import EXPLICIT
from schemas.events import Interaction


def item_targets(event: Interaction) -> list[str]:
    """Items whose statistics an event touches: its item, or every item of an impression."""
    if event.type == IMPRESSION:
        return list(event.item_ids)
    return [event.item_id] if event.item_id is not None else []


def ranker_input(event: Interaction) -> bool:
    """The events the label join needs: impressions, and engagements that name a ``rec_id``."""
    return event.type == IMPRESSION or event.rec_id is not None


def learns_from(cfg: EngineConfig) -> Callable[[Interaction], bool]:
    """Whether the collaborative model can learn anything from an event (the others are
    not sent to it): an event type it weighs above zero, or a rating in explicit mode."""
    mf = cfg.mf
    types = frozenset(t for t, w in mf.event_weights.items() if w > 0)
    if mf.mode == EXPLICIT:
        return lambda e: e.type == "rating" and e.item_id is not None
    return lambda e: e.type in types and e.item_id is not None

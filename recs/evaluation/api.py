"""What the harness asks a method, and what a method must offer.

A *method* answers :class:`Query` objects with a ranked list of item ids. It learns through its
*learner*: several methods may share one learner (the engine's sources all read the same
reference runner), and the harness makes every distinct learner learn each event once.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Protocol

from schemas.events import Interaction, ItemUpsert


@dataclass(frozen=True, slots=True)
class Query:
    """One request for recommendations, made just before ``ts``'s event is learned.

    ``history``: the items of the current session (next-item protocols) or of the user
    (streaming protocol) so far, oldest first, repeats kept. ``exclude``: items that must not be
    recommended (the streaming protocol's known items).
    """

    user_id: str
    session_id: str
    ts: int
    history: tuple[str, ...]
    exclude: Collection[str] = frozenset()


class Learner(Protocol):
    def learn(self, event: Interaction) -> None:
        """Apply one event to the model."""

    def observe(self, event: Interaction) -> None:
        """See an event that must not be learned (frozen test part): at most track the session."""

    def on_item(self, upsert: ItemUpsert) -> None:
        """Apply a catalogue record (categories)."""


class Method(Protocol):
    name: str
    description: str

    @property
    def learner(self) -> Learner: ...

    def recommend(self, query: Query, k: int) -> list[str]:
        """The best ``k`` items for ``query``, best first (fewer when the method knows fewer)."""


class SelfLearning:
    """Mixin for a method that is its own learner and ignores catalogue and frozen events."""

    @property
    def learner(self) -> Learner:
        return self  # type: ignore[return-value]

    def observe(self, event: Interaction) -> None:
        return None

    def on_item(self, upsert: ItemUpsert) -> None:
        return None

"""Tunable parameters of every operator, in one frozen object passed in by the shells."""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Final

from operators.mf_config import MFConfig

if TYPE_CHECKING:  # operators.ranker imports operators.trending, which imports this module
    from operators.ranker import RankerConfig

# How much one event says about interest in its item. Impressions say nothing (weight 0).
DEFAULT_EVENT_WEIGHTS: Final = MappingProxyType(
    {"view": 1.0, "click": 2.0, "add_to_cart": 4.0, "purchase": 8.0, "rating": 2.0,
     "impression": 0.0}
)
INTEREST_TYPES: Final = frozenset({"view", "click", "add_to_cart", "purchase", "rating"})
IMPRESSION: Final = "impression"  # the items a storefront showed: recorded, never an interest
# the neighbour relations (state.keys' kinds of the same names; operators do not import state)
SIMILAR: Final = "similar"
BOUGHT: Final = "bought"
SIMILAR_RECENT: Final = "similar_recent"
# the second similar-items list's default half-life (EngineConfig.similar_recent)
SIMILAR_RECENT_HALF_LIFE_S: Final = 86_400.0
BASKET_TYPES: Final = frozenset({"add_to_cart", "purchase"})


@dataclass(frozen=True, slots=True)
class SessionConfig:
    max_events: int = 20          # last-N events kept per user
    gap_ms: int = 30 * 60_000     # inactivity gap that starts a new session
    ttl_ms: int = 30 * 86_400_000  # state older than this (event time) is forgotten
    pair_window: int = 5          # previous distinct session items paired with a new one
    backward_weight: float = 0.5  # weight of b -> a when b follows a (a -> b gets 1)
    max_basket: int = 20
    max_purchased: int = 100
    cart_pair_weight: float = 0.5
    purchase_pair_weight: float = 1.0
    max_shown: int = 100          # distinct items remembered as shown to the user (impressions)

    def __post_init__(self) -> None:
        for name in ("max_events", "gap_ms", "ttl_ms", "pair_window", "max_basket",
                     "max_purchased", "max_shown"):
            _positive(self, name)
        for name in ("backward_weight", "cart_pair_weight", "purchase_pair_weight"):
            _non_negative(self, name)


@dataclass(frozen=True, slots=True)
class DedupConfig:
    window_ms: int = 10 * 60_000  # ids remembered this long before the user's newest event
    max_ids: int = 200            # ids remembered per user at most (the newest)

    def __post_init__(self) -> None:
        for name in ("window_ms", "max_ids"):
            _positive(self, name)


@dataclass(frozen=True, slots=True)
class NeighbourConfig:
    capacity: int = 100           # neighbours tracked per item (Space-Saving)
    top_k: int = 50               # neighbours published per item
    half_life_s: float = 7 * 86_400.0

    def __post_init__(self) -> None:
        for name in ("capacity", "top_k", "half_life_s"):
            _positive(self, name)


@dataclass(frozen=True, slots=True)
class TrendingConfig:
    # 30 min (6 h until the whole Globo log was measured, then 1 h: a news log's interest
    # moves within the hour, and no shop log lost by it; docs/quality/tuning.md has the runs)
    half_life_s: float = 1_800.0
    top_k: int = 100
    max_context_scopes: int = 16  # context scopes (device, country, daypart) scored per item
    new_top_k: int = 100          # items per new-arrivals list (operators/arrivals.py)

    def __post_init__(self) -> None:
        for name in ("half_life_s", "top_k", "max_context_scopes", "new_top_k"):
            _positive(self, name)


@dataclass(frozen=True, slots=True)
class EngineConfig:
    session: SessionConfig = field(default_factory=SessionConfig)
    dedup: DedupConfig = field(default_factory=DedupConfig)  # operators/dedup.py
    # co-visitation remembers for months: on MovieLens a 7-day half-life forgot most of it
    # (recall@10 0.106 vs 0.148 with 90 days in `recs eval`); session logs did not care (±0.001)
    similar: NeighbourConfig = field(
        default_factory=lambda: NeighbourConfig(half_life_s=90 * 86_400.0))
    bought: NeighbourConfig = field(
        default_factory=lambda: NeighbourConfig(half_life_s=30 * 86_400.0))
    # a second similar-items list: the same pairs decayed at a shorter half-life, published
    # under its own key (state.keys.KIND_SIMILAR_RECENT); None: off. The learned blend takes
    # its shares as features of their own (simr*), so each deployment's learned weights pick
    # the time scale: a news log's interest moves within a day, a catalogue's over months
    # (docs/quality/tuning.md). 1 day, as large as `similar`; made with recent_similar();
    # RECS_SIMILAR_RECENT_HALF_LIFE_S (0: off)
    similar_recent: NeighbourConfig | None = field(
        default_factory=lambda: NeighbourConfig(half_life_s=SIMILAR_RECENT_HALF_LIFE_S))
    trending: TrendingConfig = field(default_factory=TrendingConfig)
    event_weights: MappingProxyType[str, float] = field(
        default_factory=lambda: DEFAULT_EVENT_WEIGHTS)
    # the online models (stream/models.py; recs eval's engine learns the same one)
    # 10 sampled negatives: 1.8x the learning rate of 20 for -2.7 % recall@10 of the model alone
    # on MovieLens and no loss in the engine (docs/quality/tuning.md)
    mf: MFConfig = field(default_factory=lambda: MFConfig(negatives=10))
    ranker: RankerConfig = field(default_factory=lambda: _ranker_config())

    def neighbour(self, relation: str) -> NeighbourConfig:
        """The configuration of one neighbour relation (a kind of :mod:`state.keys`)."""
        if relation == SIMILAR:
            return self.similar
        if relation == BOUGHT:
            return self.bought
        if relation == SIMILAR_RECENT and self.similar_recent is not None:
            return self.similar_recent
        raise ValueError(f"EngineConfig.neighbour: relation {relation!r} is not kept "
                         f"(expected {SIMILAR!r}, {BOUGHT!r} or, when on, {SIMILAR_RECENT!r})")

    def weight(self, etype: str, value: float | None = None) -> float:
        if etype == "rating" and value is not None:
            # a rating is interest in proportion to how much the user liked it (5 -> full weight)
            return self.event_weights["rating"] * max(value, 0.0) / 5.0
        return self.event_weights.get(etype, 0.0)


def recent_similar(similar: NeighbourConfig, half_life_s: float) -> NeighbourConfig | None:
    """The second similar-items list at ``half_life_s`` (0: off), as large as ``similar``."""
    if half_life_s < 0:
        raise ValueError(f"similar_recent half_life_s: expected >= 0 (0: off), got {half_life_s}")
    if half_life_s == 0:
        return None
    return NeighbourConfig(similar.capacity, similar.top_k, half_life_s)


def _ranker_config() -> RankerConfig:
    from operators.ranker import RankerConfig

    return RankerConfig()


def _positive(cfg: object, name: str) -> None:
    value = getattr(cfg, name)
    if not value > 0:
        raise ValueError(f"{type(cfg).__name__}.{name}: must be > 0, got {value!r}")


def _non_negative(cfg: object, name: str) -> None:
    value = getattr(cfg, name)
    if not value >= 0:
        raise ValueError(f"{type(cfg).__name__}.{name}: must be >= 0, got {value!r}")

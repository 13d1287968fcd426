# The compiled core's interface (native/src/lib.rs); loaded through serving/native.py.
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from operators.blend import BlendParams, Fill, Scored, Shares
from operators.learned_blend import BlendModel, Candidate, LearnedBlendConfig
from serving.rules import Meta, Ranked, RerankInput, Rules

VERSION: str

def blend(session: Mapping[str, Any] | None, similar: Mapping[str, Shares],
          bought: Mapping[str, Shares], fills: Sequence[Fill], params: BlendParams, *, k: int,
          exclude: Collection[str] = (), vector: Shares = (), vector_because: str = "",
          vector_events: int = 0) -> list[Scored]: ...

def rerank(cands: Sequence[Scored], meta: Meta, rules: Rules,
           req: RerankInput) -> list[Ranked]: ...

def features(prior: Sequence[Scored], session: Mapping[str, Any] | None,
             similar: Mapping[str, Shares], fills: Sequence[Fill], params: BlendParams,
             cfg: LearnedBlendConfig, exclude: Collection[str], *,
             similar_recent: Mapping[str, Shares] | None = None,
             now: int | None = None) -> tuple[Candidate, ...]: ...

def learned_order(model: BlendModel, cands: Sequence[Candidate]) -> list[Candidate]: ...

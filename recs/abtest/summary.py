"""Tallies + experiments -> per-variant statistics, a text table and one JSON document; pure.

Per variant, over recommendation responses:

* **CTR** = responses with >= 1 click (or add-to-cart or purchase) of a shown item / responses;
* **item CTR** = distinct clicked (response, item) pairs / shown items;
* **conversion** = responses with a purchase of a shown item / responses.

Every treatment is compared with its experiment's control (lift, CI, pooled z-test p-value);
CIs are at ``1 - alpha``. No correction is made for several treatments or several metrics.
The unit is the response: responses of one user are not independent, so with many responses
per user the intervals are somewhat too narrow.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from recs.abtest import stats
from recs.abtest.attribution import Tallies, VariantTally
from recs.abtest.experiments import Experiment
from recs.abtest.stats import Comparison, Proportion


@dataclass(frozen=True, slots=True)
class VariantRow:
    name: str
    is_control: bool
    tally: VariantTally
    ctr: Proportion
    item_ctr: Proportion
    conversion: Proportion
    ctr_vs_control: Comparison | None  # None for the control itself
    conversion_vs_control: Comparison | None


@dataclass(frozen=True, slots=True)
class ExperimentSummary:
    experiment: Experiment
    rows: tuple[VariantRow, ...]
    users_in_several_variants: int


def summarise(experiments: Sequence[Experiment], tallies: Tallies, *,
              alpha: float) -> list[ExperimentSummary]:
    """One summary per experiment, control first, then the variants in configured order."""
    confidence = 1.0 - alpha
    out: list[ExperimentSummary] = []
    for exp in experiments:
        seen = tallies.variants.get(exp.name, {})
        order = [exp.control, *(v for v in exp.variants if v != exp.control)]
        props = {v: _props(seen.get(v, VariantTally()), confidence) for v in order}
        ctr_c, _, conv_c = props[exp.control]
        rows: list[VariantRow] = []
        for v in order:
            ctr, item_ctr, conv = props[v]
            control = v == exp.control
            rows.append(VariantRow(
                v, control, seen.get(v, VariantTally()), ctr, item_ctr, conv,
                None if control else stats.compare(ctr_c, ctr, alpha=alpha),
                None if control else stats.compare(conv_c, conv, alpha=alpha)))
        out.append(ExperimentSummary(exp, tuple(rows),
                                     tallies.users_in_several_variants.get(exp.name, 0)))
    return out


def _props(t: VariantTally, confidence: float) -> tuple[Proportion, Proportion, Proportion]:
    return (stats.proportion(t.clicked_responses, t.responses, confidence),
            stats.proportion(t.clicked_items, t.shown_items, confidence),
            stats.proportion(t.purchased_responses, t.responses, confidence))


def _yes_no(c: Comparison) -> str:
    return "n/a" if c.significant is None else ("yes" if c.significant else "no")


def render_table(summary: ExperimentSummary, alpha: float) -> str:
    """A Markdown table for one experiment, with ``n/a`` for undefined values.

    >>> from recs.abtest.attribution import Tallies, VariantTally
    >>> exp = Experiment("home", "a", ("a", "b"), "config")
    >>> t = Tallies(variants={"home": {"a": VariantTally(responses=100, users=90,
    ...                                                  clicked_responses=10)}})
    >>> table = render_table(summarise([exp], t, alpha=0.05)[0], 0.05).splitlines()
    >>> print(table[0])
    ### home (control: a, from the configuration)
    >>> print(table[1][:50])
    | variant | responses | users | CTR [95% CI] | CTR
    >>> print(table[3])
    | a (control) | 100 | 90 | 10.00% [5.52, 17.44] | - | - | - | 0.00% [0.00, 3.70] | - | - | - |
    >>> print(table[4])
    | b | 0 | 0 | n/a | n/a | n/a | n/a | n/a | n/a | n/a | n/a |
    """
    exp = summary.experiment
    pct = f"{100 * (1 - alpha):g}% CI"
    source = "from the configuration" if exp.control_source == "config" else "inferred"
    lines = [f"### {exp.name} (control: {exp.control}, {source})",
             f"| variant | responses | users | CTR [{pct}] | CTR lift [{pct}] | p | sig "
             f"| conversion [{pct}] | conv. lift [{pct}] | p | sig |",
             "|---|---:|---:|---|---|---:|---|---|---|---:|---|"]
    for r in summary.rows:
        cells = [f"{r.name} (control)" if r.is_control else r.name, str(r.tally.responses),
                 str(r.tally.users), stats.fmt_rate(r.ctr)]
        cells += _compare_cells(r.ctr_vs_control)
        cells.append(stats.fmt_rate(r.conversion))
        cells += _compare_cells(r.conversion_vs_control)
        lines.append("| " + " | ".join(cells) + " |")
    if summary.users_in_several_variants:
        lines.append(f"\n{summary.users_in_several_variants} user(s) got responses from more "
                     "than one variant: assignment is not per user.")
    return "\n".join(lines)


def _compare_cells(c: Comparison | None) -> list[str]:
    if c is None:
        return ["-", "-", "-"]
    return [stats.fmt_lift(c), stats.fmt_p(c.p_value), _yes_no(c)]


def _prop_json(p: Proportion) -> dict[str, Any]:
    return {"successes": p.successes, "trials": p.trials, "rate": p.rate,
            "ci": None if p.ci is None else p.ci.as_list()}


def _cmp_json(c: Comparison | None) -> dict[str, Any] | None:
    if c is None:
        return None
    return {"lift": c.lift, "lift_ci": None if c.lift_ci is None else c.lift_ci.as_list(),
            "p_value": c.p_value, "significant": c.significant}


def summary_json(summary: ExperimentSummary) -> dict[str, Any]:
    """The JSON-ready form of one experiment (``None`` where a value is undefined)."""
    exp = summary.experiment
    variants = []
    for r in summary.rows:
        t = r.tally
        variants.append({
            "name": r.name, "is_control": r.is_control, "responses": t.responses,
            "shown_items": t.shown_items, "users": t.users,
            "clicked_responses": t.clicked_responses, "clicked_items": t.clicked_items,
            "carted_responses": t.carted_responses,
            "purchased_responses": t.purchased_responses, "purchased_items": t.purchased_items,
            "viewed_items": t.viewed_items,
            "ctr": _prop_json(r.ctr), "item_ctr": _prop_json(r.item_ctr),
            "conversion": _prop_json(r.conversion),
            "vs_control": None if r.is_control else {
                "ctr": _cmp_json(r.ctr_vs_control),
                "conversion": _cmp_json(r.conversion_vs_control)},
        })
    return {"name": exp.name, "control": exp.control, "control_source": exp.control_source,
            "users_in_several_variants": summary.users_in_several_variants,
            "variants": variants}


def tallies_json(t: Tallies) -> dict[str, Any]:
    """The log-level counts: what was read, skipped, duplicated and left unattributed."""
    u = t.unattributed
    return {
        "events": t.events, "duplicates": t.duplicates, "organic": t.organic,
        "ignored": t.ignored, "duplicate_rec_ids": t.duplicate_rec_ids,
        "impressions_without_variant": t.impressions_without_variant,
        "impressions_before_since": t.impressions_before_since,
        "outcomes_before_since": t.outcomes_before_since,
        "variant_mismatch": t.variant_mismatch,
        "unattributed": {"no_impression": u.no_impression, "item_not_shown": u.item_not_shown,
                         "no_variant": u.no_variant, "total": u.total},
    }

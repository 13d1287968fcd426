"""Results as a Markdown table, a JSON summary and an HR@K plot.

``write_json`` stores one run as ``<dir>/<dataset>.json`` (and :func:`plot` its ``.png``);
:func:`recs.evaluation.page.write_page` regenerates the results page (``docs/quality.md``) from
every stored run, so the page is always the commands' own output.
"""

from __future__ import annotations

import datetime as dt
import os
import platform
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import orjson

from recs.evaluation.harness import Outcome
from recs.evaluation.protocols import STREAMING

SESSION_COLUMNS = (("HR@20", "hr@20"), ("MRR@20", "mrr@20"), ("NDCG@20", "ndcg@20"),
                   ("P@20", "precision@20"), ("HR@10", "hr@10"), ("MRR@10", "mrr@10"),
                   ("Cov@20", "coverage@20"), ("Div@20", "diversity@20"),
                   ("Nov@20", "novelty@20"))
STREAMING_COLUMNS = (("recall@10", "hr@10"), ("MRR@10", "mrr@10"), ("NDCG@10", "ndcg@10"),
                     ("HR@20", "hr@20"), ("MRR@20", "mrr@20"), ("NDCG@20", "ndcg@20"),
                     ("Cov@20", "coverage@20"), ("Div@20", "diversity@20"),
                     ("Nov@20", "novelty@20"), ("MPR %", "mpr"))
SUMMARY_KEYS = ("hr@20", "mrr@20", "ndcg@20", "precision@20", "coverage@20", "diversity@20",
                "novelty@20", "hr@10", "mrr@10", "ndcg@10")
SIMPLE_BASELINES = ("pop", "recent_pop", "covisit", "ar", "sr")


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def table(outcome: Outcome, protocol: str, descriptions: Mapping[str, str]) -> str:
    """The results as a Markdown table, one row per method, best HR@20/recall@10 in bold."""
    columns = STREAMING_COLUMNS if protocol == STREAMING else SESSION_COLUMNS
    head = "| method | " + " | ".join(c for c, _ in columns) + " | seconds | what |"
    rule = "|---|" + "---:|" * (len(columns) + 1) + "---|"
    lead_key = columns[0][1]
    best = max((m[lead_key] for m in outcome.metrics.values()), default=0.0)
    rows = [head, rule]
    for name, metrics in outcome.metrics.items():
        cells = []
        for label, key in columns:
            cell = _fmt(metrics.get(key), 2 if label == "MPR %" else 4)
            if key == lead_key and metrics.get(key) == best and best:
                cell = f"**{cell}**"
            cells.append(cell)
        seconds = f"{outcome.method_seconds.get(name, 0.0):.1f}"
        rows.append(f"| `{name}` | " + " | ".join(cells) + f" | {seconds} | "
                    f"{descriptions.get(name, '')} |")
    return "\n".join(rows)


def summary(outcome: Outcome, protocol: str) -> dict[str, Any]:
    """The command's last line: each method's metrics, plus ``events`` and ``seconds``."""
    out: dict[str, Any] = {}
    for name, metrics in outcome.metrics.items():
        row = {k: _round(metrics.get(k)) for k in SUMMARY_KEYS}
        if protocol == STREAMING:
            row["recall@10"] = _round(metrics.get("hr@10"))
            row["mpr"] = _round(metrics.get("mpr"))
        out[name] = row
    out["events"] = outcome.events
    out["seconds"] = round(outcome.seconds, 1)
    return out


def _round(value: Any) -> Any:
    return round(value, 4) if isinstance(value, float) else value


def comparison(outcome: Outcome) -> list[str]:
    """Plain sentences: the engine's blend against the best simple baseline and all others."""
    metrics = outcome.metrics
    if "engine" not in metrics:
        return []
    lines = []
    for key in ("hr@20", "mrr@20", "hr@10"):
        eng = metrics["engine"].get(key) or 0.0
        simple = [(metrics[m].get(key) or 0.0, m) for m in SIMPLE_BASELINES if m in metrics]
        others = [(v.get(key) or 0.0, m) for m, v in metrics.items()
                  if not m.startswith("engine")]
        if not others:
            continue
        best_simple = max(simple) if simple else None
        best_any = max(others)
        text = f"{key}: engine {eng:.4f}"
        if best_simple:
            text += f"; best simple baseline `{best_simple[1]}` {best_simple[0]:.4f} " \
                    f"({'at or above' if eng >= best_simple[0] else 'below'})"
        text += f"; best baseline `{best_any[1]}` {best_any[0]:.4f} " \
                f"({'at or above' if eng >= best_any[0] else 'below'})"
        lines.append(text)
    return lines


def machine() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        mem_gib = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30)
    except (ValueError, OSError, AttributeError):
        mem_gib = None
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_gib": mem_gib,
            "python": platform.python_version(), "os": platform.system()}


def plot(curves: Mapping[str, Sequence[float]], path: Path, title: str) -> bool:
    """HR@K for K = 1..50 per method as a small PNG; ``False`` when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, ax = plt.subplots(figsize=(7.0, 4.2), dpi=80)
    for name, curve in curves.items():
        ks = range(1, len(curve) + 1)
        style: dict[str, Any] = {"linewidth": 2.4 if name == "engine" else 1.2}
        if name.startswith("engine."):
            style["linestyle"] = "--"
        ax.plot(ks, curve, label=name, **style)
    ax.set_xlabel("K")
    ax.set_ylabel("HR@K (recall@K)")
    ax.set_title(title, fontsize=10)
    ax.set_xlim(1, max((len(c) for c in curves.values()), default=50))
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2, loc="lower right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", metadata={"Software": None})
    plt.close(fig)
    return True


def write_json(path: Path, record: dict[str, Any],
               curves: Mapping[str, Sequence[float]]) -> None:
    """Store one run, with its HR@1..50 curves, where the results page finds it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {**record, "curves": {k: [round(v, 5) for v in c] for k, c in curves.items()}}
    path.write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2) + b"\n")


def record(*, run: str, dataset: str, data: str, protocol: str, command: str, outcome: Outcome,
           table_md: str, engine: Mapping[str, Any], plot_name: str | None) -> dict[str, Any]:
    return {
        "run": run, "dataset": dataset, "data": data, "protocol": protocol, "command": command,
        "date": dt.date.today().isoformat(), "machine": machine(), "events": outcome.events,
        "predictions": outcome.predictions, "seconds": round(outcome.seconds, 1),
        "catalogue": outcome.catalogue, "notes": outcome.notes, "table": table_md,
        "comparison": comparison(outcome), "engine": dict(engine), "plot": plot_name,
        "metrics": {k: {m: _round(v) for m, v in ms.items()}
                    for k, ms in outcome.metrics.items()},
        "method_seconds": {k: round(v, 1) for k, v in outcome.method_seconds.items()},
    }

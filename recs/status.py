"""``recs status``: one screen on the engine's health, read from its metric endpoints.

    recs status [--targets name=URL,...] [--server URL] [--window SECONDS] [--json]

Scrapes every target twice, ``--window`` seconds apart (rates, deltas and histogram quantiles need
two), and prints consumer lag per group and topic, update freshness, Redis data age, the last
checkpoint's age, the DLQ rate, serving p99 and degraded answers, and which targets answer. Exit
code 0 healthy, 1 when an alert condition holds, 2 when nothing answers or on bad usage.

The conditions are those of ``infra/prometheus/alerts.yml``, rule by rule, with the thresholds of
``infra.alerting.thresholds()``; rates and deltas are taken over ``--window`` instead of the
rule's range, and a rule's ``for:`` is not applied (status judges the value now). The blend
learner's group (:data:`stream.monitor_kafka.BLEND_GROUP`) is judged as the rules judge it: its
lag in seconds by ``RecsBlendLearnerBehind``, its records for information, never by the job's
lag rules. Targets:
``--targets`` or ``RECS_METRICS_TARGETS`` (``name=http://host:port/metrics``, comma-separated;
default the monitor and the loader on loopback at their settings ports), plus the server's
``/metrics``. The scraping and the readings (:mod:`recs.readings`) are shared with the
server's ``/dashboard``.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from infra.alerting import thresholds
from recs.readings import (
    LOOPBACK,
    SCRAPE_TIMEOUT_S,
    Readings,
    Snapshot,
    Target,
    parse_targets,
    read,
    scrape_all,
    targets_of,
)
from recs.settings import Settings
from stream.monitor_kafka import BLEND_GROUP

EXIT_OK, EXIT_ALERT, EXIT_UNREACHABLE = 0, 1, 2


@dataclass(frozen=True, slots=True)
class Check:
    rule: str              # the alert of infra/prometheus/alerts.yml; "" for information only
    subject: str           # what was measured, for people
    value: float | None    # None: no data (never an alert, as in Prometheus)
    threshold: float | None
    unit: str              # "s", "records", "/s", "share", "count"
    alert: bool


def _above(value: float | None, threshold: float | None) -> bool:
    return value is not None and threshold is not None and value > threshold


def checks(r: Readings, snapshot: Snapshot, t: Mapping[str, Mapping[str, Any]]) -> list[Check]:
    """One line per condition of the alert rules (per group/topic, kind, reason, endpoint as the
    rule groups), plus Redis data age and degraded share for information."""
    out: list[Check] = []

    def add(rule: str, subject: str, value: float | None, limit: float | None, unit: str,
            alert: bool | None = None) -> None:
        out.append(Check(rule, subject.strip(), value, limit, unit,
                         _above(value, limit) if alert is None else alert))

    lag, serving = t["consumer_lag"], t["serving"]
    for key in sorted(set(r.lag_records) | set(r.lag_seconds)) or [""]:
        records = r.lag_records.get(key)
        if key.partition("/")[0] == BLEND_GROUP:  # only the learned blend's weights are behind
            add("", f"lag {key}", records, None, "records")
            add("RecsBlendLearnerBehind", f"lag {key}", r.lag_seconds.get(key),
                t["blend_learner"]["lag_seconds"], "s")
            continue
        add("RecsConsumerLagGrowing", f"lag {key}", records, lag["records"], "records",
            _above(records, lag["records"]) and _above(r.lag_growth.get(key), 0))
        add("RecsConsumerLagHigh", f"lag {key}", r.lag_seconds.get(key), lag["seconds"], "s")
    for group, members in sorted(r.group_members.items()):  # the blend learner's
        add("", f"consumers {group}", members, None, "consumers")
    for kind, p99 in sorted(r.freshness_p99_s.items()) or [("", None)]:
        add("RecsFreshnessP99OverBudget", f"freshness p99 {kind}", p99,
            t["freshness"]["p99_seconds"], "s")
    add("", "redis data age", max(r.redis_data_age_s.values(), default=None), None, "s")
    add("RecsCheckpointStale", "last checkpoint age", r.checkpoint_age_s,
        t["checkpoints"]["max_age_seconds"], "s")
    add("RecsCheckpointsFailing", "failed checkpoints", r.checkpoints_failed,
        t["checkpoints"]["failed"], "count")
    dlq: dict[str, float | None] = {**r.dlq_per_s} or {"": None}
    for reason, per_s in sorted(dlq.items()):
        add("RecsDlqSpike", f"DLQ {reason}", per_s, t["dlq"]["events_per_second"], "/s")
    # every endpoint is judged; shown are those over budget, else the slowest
    slowest = {e: q["p99"] for e, q in r.latency_s.items() if q["p99"] is not None}
    over = sorted(e for e, v in slowest.items() if v > serving["p99_seconds"])
    for e in over or [max(slowest, key=lambda e: slowest[e], default="")]:
        add("RecsServingLatencyP99OverBudget", f"serving p99 {e}", slowest.get(e),
            serving["p99_seconds"], "s")
    over = sorted(e for e, v in r.degraded_per_s.items() if v > serving["degraded_per_second"])
    for e in over or [""]:
        add("RecsAnswersDegraded", f"degraded answers {e}",
            r.degraded_per_s.get(e, sum(r.degraded_per_s.values()) if r.degraded_per_s else None),
            serving["degraded_per_second"], "/s")
    add("", "degraded share", r.degraded_share, None, "share")
    for model in sorted(r.model_events_per_s):
        add("", f"model {model} learns", r.model_events_per_s[model], None, "/s")
        add("", f"model {model} sampled out", r.model_sampled_share.get(model), None, "share")
        add("", f"model {model} behind", r.model_lag_events.get(model), None, "records")
    add("RecsRedisDown", "servers without Redis", r.redis_down, 0, "count")
    down = [s.target.name for s in snapshot.scrapes if not s.up]
    add("RecsTargetDown", f"targets down {', '.join(down)}", float(len(down)), 0, "count")
    return out


# ---- the report ---------------------------------------------------------------------------

def summary(before: Snapshot, after: Snapshot, t: Mapping[str, Mapping[str, Any]]
            ) -> dict[str, Any]:
    """The whole report as one JSON-able document (``--json`` prints it; the text is drawn
    from it); ``exit_code`` 2 when no target answered either scrape."""
    readings = read(before, after)
    found = checks(readings, after, t)
    alerts = sorted({c.rule for c in found if c.alert})
    code = EXIT_UNREACHABLE if not before.up() and not after.up() else \
        EXIT_ALERT if alerts else EXIT_OK
    return {
        "status": {EXIT_OK: "ok", EXIT_ALERT: "alert"}.get(code, "unreachable"),
        "exit_code": code, "alerts": alerts, "window_s": round(after.at - before.at, 3),
        "targets": [{"name": s.target.name, "url": s.target.url, "up": s.up, "error": s.error,
                     "scrape_ms": round(s.seconds * 1000, 1)} for s in after.scrapes],
        "checks": [{"rule": c.rule, "subject": c.subject, "value": c.value,
                    "threshold": c.threshold, "unit": c.unit, "alert": c.alert} for c in found],
        "lag": [{"group": k.partition("/")[0], "topic": k.partition("/")[2],
                 "records": readings.lag_records.get(k), "seconds": readings.lag_seconds.get(k)}
                for k in sorted(set(readings.lag_records) | set(readings.lag_seconds))],
    }


def fmt(value: float | None, unit: str) -> str:
    """A value for people.

    >>> fmt(0.0042, "s"), fmt(73.25, "s"), fmt(12345, "records"), fmt(0.031, "share")
    ('4.2 ms', '73.2 s', '12,345 records', '3.1 %')
    >>> fmt(0, "consumers"), fmt(1, "consumers")
    ('not running', '1 running')
    """
    if value is None:
        return "no data"
    if unit == "s":
        if value == 0:
            return "0 s"
        if value < 1:
            return f"{value * 1000:.1f} ms"
        return f"{value:.1f} s" if value < 600 else f"{value / 60:.0f} min"
    if unit == "records":
        return f"{value:,.0f} records"
    if unit == "share":
        return f"{value * 100:.1f} %"
    if unit == "consumers":
        return f"{value:.0f} running" if value else "not running"
    return f"{value:.0f}" if unit == "count" else f"{value:.2f} {unit}"


def render(doc: dict[str, Any]) -> str:
    now = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    lines = [f"recs status  {now}  rates over {doc['window_s']:.1f} s", "", "targets"]
    for t in doc["targets"]:
        extra = f"{t['scrape_ms']:.0f} ms" if t["up"] else t["error"] or ""
        lines.append(f"  {t['name']:<10} {'up  ' if t['up'] else 'DOWN'}  {t['url']:<36} {extra}")
    lines += ["", f"  {'state':<6} {'check':<42} {'value':>16}  {'alert above':<15} rule"]
    for c in doc["checks"]:
        state = "ALERT" if c["alert"] else "-" if c["value"] is None else "ok" if c["rule"] \
            else "info"
        limit = "" if c["threshold"] is None else fmt(c["threshold"], c["unit"])
        lines.append(f"  {state:<6} {c['subject'][:42]:<42} {fmt(c['value'], c['unit']):>16}  "
                     f"{limit:<15} {c['rule']}")
    lines.append("")
    lines.append("status: UNREACHABLE (no target answered)" if doc["exit_code"] == EXIT_UNREACHABLE
                 else f"status: ALERT  {', '.join(doc['alerts'])}" if doc["alerts"]
                 else "status: OK")
    return "\n".join(lines)


# ---- the command --------------------------------------------------------------------------

def server_target(settings: Settings) -> Target:
    host = LOOPBACK if settings.http_host in {"0.0.0.0", "::", ""} else settings.http_host
    return Target("server", f"http://{host}:{settings.http_port}/metrics")


def _parse(argv: list[str], settings: Settings) -> tuple[argparse.Namespace, list[Target]]:
    parser = argparse.ArgumentParser(prog="recs status", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--targets", default=None,
                        help="name=URL,... (default: $RECS_METRICS_TARGETS, else the monitor "
                             "and the loader)")
    parser.add_argument("--server", default=server_target(settings).url,
                        help="the server's /metrics URL ('' to leave it out)")
    parser.add_argument("--key-file", type=Path, default=None,
                        help="a file holding a server-scope API key, sent to the server's "
                             "/metrics (the private side; not needed from loopback when the "
                             "server runs with RECS_PRIVATE_LOOPBACK=1)")
    parser.add_argument("--window", type=float, default=5.0,
                        help="seconds between the two scrapes rates are computed from")
    parser.add_argument("--timeout", type=float, default=SCRAPE_TIMEOUT_S)
    parser.add_argument("--json", action="store_true", help="one JSON document on stdout")
    args = parser.parse_args(argv)
    if not (0 <= args.window <= 300 and 0 < args.timeout <= 30):
        parser.error(f"--window must be in 0..300 s and --timeout in (0, 30] s, got "
                     f"{args.window} and {args.timeout}")
    try:
        targets = (targets_of(settings) if args.targets is None
                   else parse_targets(args.targets))
    except ValueError as exc:
        parser.error(str(exc))
    if args.server:
        if any(t.name == "server" for t in targets):
            parser.error("--targets names a target 'server'; pass --server '' to use it")
        key = None
        if args.key_file is not None:
            try:
                key = args.key_file.read_text().strip()
            except OSError as exc:
                parser.error(f"--key-file: cannot read {args.key_file}: {exc.strerror}")
        targets.append(Target("server", args.server, key))
    if not targets:
        parser.error("no targets: give --targets or --server")
    return args, targets


def main(argv: list[str]) -> int:
    try:
        args, targets = _parse(argv, Settings.from_env())
    except SystemExit as exc:  # argparse: --help (0) or bad usage (2)
        return exc.code if isinstance(exc.code, int) else EXIT_UNREACHABLE
    limits = thresholds()
    before = scrape_all(targets, args.timeout)
    if args.window > 0:
        time.sleep(max(0.0, before.at + args.window - time.monotonic()))
    doc = summary(before, scrape_all(targets, args.timeout) if args.window > 0 else before, limits)
    print(orjson.dumps(doc).decode() if args.json else render(doc))
    return int(doc["exit_code"])

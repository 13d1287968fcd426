"""``recs ab report``: the A/B experiment report, read from the interactions topic.

    recs ab report
    recs ab report --experiments serving/config/experiments.toml --since 2026-11-01 --alpha 0.01
    recs ab report --json | jq '.experiments[0].variants'

Reads the topic from the beginning up to the end offsets taken at start (no consumer group, no
commits: the report never moves anybody's offsets), decodes each record with the interaction
contract (undecodable records are skipped and counted), attributes clicks and purchases to the
responses that showed them (:mod:`recs.abtest.attribution`) and prints one table per experiment
(:mod:`recs.abtest.summary`), then, as its last line, one JSON object with everything. With
``--json`` only that line is printed.

Without an experiments file at the default path each experiment's control is inferred: the
variant named ``control``, else the alphabetically first; the report says so.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import orjson

from recs.abtest.attribution import Attribution, Tallies
from recs.abtest.experiments import (
    DEFAULT_PATH,
    Experiment,
    ExperimentConfigError,
    load_experiments,
    resolve,
)
from recs.abtest.summary import render_table, summarise, summary_json, tallies_json
from recs.settings import Settings
from schemas.events import SchemaError, decode_interaction

MAX_EXAMPLES: Final = 3
POLL_MS: Final = 500


class ReportError(RuntimeError):
    """The report could not read its input; the message names the step and the value."""


@dataclass(slots=True)
class ReadStats:
    partitions: int = 0
    records: int = 0
    undecodable: int = 0
    examples: list[str] = field(default_factory=list)  # the first few decoding errors


def parse_since(text: str) -> int:
    """Epoch milliseconds or an ISO 8601 time (UTC when no offset is given) -> epoch ms.

    >>> parse_since("1700000000000"), parse_since("2023-11-14T22:13:20Z")
    (1700000000000, 1700000000000)
    >>> parse_since("2023-11-14")
    1699920000000
    >>> parse_since("yesterday")
    Traceback (most recent call last):
    ...
    ValueError: --since: expected epoch milliseconds or an ISO 8601 time, got 'yesterday'
    """
    value = text.strip()
    if value.isdigit():
        return int(value)
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"--since: expected epoch milliseconds or an ISO 8601 time, "
                         f"got {text!r}") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return int(when.timestamp() * 1000)


def _alpha(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"--alpha: expected a number in (0, 1), got {text!r}")
    return value


def _since(text: str) -> int:
    try:
        return parse_since(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def parser(settings: Settings) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="recs ab report", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--experiments", type=Path, default=None,
                   help=f"experiments TOML (default: {DEFAULT_PATH} when it exists, else "
                        "controls are inferred)")
    p.add_argument("--since", type=_since, default=None,
                   help="only responses at or after this time (epoch ms or ISO 8601)")
    p.add_argument("--alpha", type=_alpha, default=0.05,
                   help="significance level; CIs are at 1 - alpha (default 0.05)")
    p.add_argument("--bootstrap", default=settings.kafka_bootstrap,
                   help="Kafka bootstrap servers (default: from the settings)")
    p.add_argument("--topic", default=settings.topics.interactions,
                   help="interactions topic (default: from the settings)")
    p.add_argument("--timeout", type=float, default=60.0,
                   help="seconds allowed for reading up to the end offsets (default 60)")
    p.add_argument("--json", action="store_true", help="print only the JSON line")
    return p


def read_topic(bootstrap: str, topic: str, stats: ReadStats, *,
               timeout_s: float) -> Iterator[bytes | None]:
    """The values of ``topic`` from the beginning up to the end offsets taken at start."""
    from kafka import KafkaConsumer
    from kafka.errors import KafkaError

    deadline = time.monotonic() + timeout_s
    try:
        consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None,
                                 enable_auto_commit=False, allow_auto_create_topics=False,
                                 client_id="recs-ab-report")
    except KafkaError as exc:
        raise ReportError(f"report.bootstrap: cannot connect to {bootstrap!r}: {exc!r}") \
            from exc
    try:
        yield from _read(consumer, topic, stats, deadline, timeout_s)
    except KafkaError as exc:
        raise ReportError(f"report.read: reading {topic!r} from {bootstrap!r} failed: "
                          f"{exc!r}") from exc
    finally:
        consumer.close()


def _read(consumer: Any, topic: str, stats: ReadStats, deadline: float,
          timeout_s: float) -> Iterator[bytes | None]:
    from kafka import TopicPartition

    ids = consumer.partitions_for_topic(topic)
    if not ids:
        raise ReportError(f"report.topic: topic {topic!r} not found on the broker")
    parts = [TopicPartition(topic, p) for p in sorted(ids)]
    stats.partitions = len(parts)
    consumer.assign(parts)
    consumer.seek_to_beginning(*parts)
    end: dict[Any, int] = consumer.end_offsets(parts)
    pending = {tp for tp in parts if consumer.position(tp) < end[tp]}
    while pending:
        if time.monotonic() > deadline:
            where = {f"{tp.topic}[{tp.partition}]": f"{consumer.position(tp)}/{end[tp]}"
                     for tp in sorted(pending, key=lambda t: t.partition)}
            raise ReportError(f"report.read: end offsets not reached within {timeout_s} s "
                              f"(position/end: {where})")
        for tp, records in consumer.poll(timeout_ms=POLL_MS).items():
            for rec in records:
                if rec.offset < end[tp]:
                    yield rec.value
        for tp in list(pending):
            if consumer.position(tp) >= end[tp]:
                pending.discard(tp)
                consumer.pause(tp)


def fold(values: Iterable[bytes | None], attribution: Attribution, stats: ReadStats) -> None:
    """Decode each value and feed it to ``attribution``; count what does not decode."""
    for value in values:
        stats.records += 1
        try:
            if value is None:
                raise SchemaError("interaction", "<document>", "empty record (tombstone)", None)
            event = decode_interaction(value)
        except SchemaError as exc:
            stats.undecodable += 1
            if len(stats.examples) < MAX_EXAMPLES:
                stats.examples.append(str(exc))
            continue
        attribution.add(event)


def choose_experiments(path: Path | None) -> tuple[tuple[Experiment, ...], str | None, str]:
    """(configured experiments, the file used or None, a note saying which)."""
    if path is None:
        if not DEFAULT_PATH.exists():
            return (), None, (f"no experiments file at {DEFAULT_PATH}: each control is the "
                              "variant named 'control', else the alphabetically first")
        path = DEFAULT_PATH
    return load_experiments(path), str(path), f"experiments from {path}"


def build_report(tallies: Tallies, configured: Iterable[Experiment], *, alpha: float,
                 read: ReadStats, topic: str, since_ms: int | None,
                 experiments_file: str | None,
                 notes: list[str]) -> tuple[list[str], dict[str, Any]]:
    """(text lines, JSON document) for the whole report; pure."""
    experiments, resolve_notes = resolve(configured, tallies.observed())
    summaries = summarise(experiments, tallies, alpha=alpha)
    all_notes = [*notes, *resolve_notes]
    lines = [f"# {topic}: {read.records:,} records in {read.partitions} partition(s) up to the "
             f"end offsets at start; {read.undecodable:,} undecodable skipped"]
    lines += [f"# {n}" for n in all_notes]
    if not summaries:
        lines.append("# no experiment traffic (no impression with a rec_id and a variant)")
    for s in summaries:
        lines += ["", render_table(s, alpha)]
    counts = tallies_json(tallies)
    u = counts["unattributed"]
    lines += ["", f"# attributed over {tallies.events:,} distinct events "
                  f"({tallies.duplicates:,} duplicate deliveries, {tallies.organic:,} organic); "
                  f"unattributed outcomes: {u['total']:,} (no matching impression "
                  f"{u['no_impression']:,}, item not shown {u['item_not_shown']:,}, impression "
                  f"without variant {u['no_variant']:,})"]
    if tallies.variant_mismatch:
        lines.append(f"# {tallies.variant_mismatch:,} outcomes carried another variant than "
                     "their impression (attributed to the impression's)")
    doc = {"topic": topic, "partitions": read.partitions, "records": read.records,
           "undecodable": read.undecodable, "undecodable_examples": read.examples,
           "since_ms": since_ms, "alpha": alpha, "confidence": 1.0 - alpha,
           "experiments_file": experiments_file, "notes": all_notes, "counts": counts,
           "experiments": [summary_json(s) for s in summaries]}
    return lines, doc


def main(argv: list[str]) -> int:
    args = parser(Settings.from_env()).parse_args(argv)
    try:
        configured, used, note = choose_experiments(args.experiments)
    except ExperimentConfigError as exc:
        print(f"recs ab report: {exc}", file=sys.stderr)
        return 2
    read = ReadStats()
    attribution = Attribution(args.since)
    try:
        fold(read_topic(args.bootstrap, args.topic, read, timeout_s=args.timeout),
             attribution, read)
    except ReportError as exc:
        print(f"recs ab report: {exc}", file=sys.stderr)
        return 1
    lines, doc = build_report(attribution.result(), configured, alpha=args.alpha, read=read,
                              topic=args.topic, since_ms=args.since, experiments_file=used,
                              notes=[note])
    if not args.json:
        print("\n".join(lines))
    print(orjson.dumps(doc).decode())
    return 0

"""``recs ab report`` against the real broker of the ``kafka`` fixture.

Generated logs with planted click-through rates are published to fresh topics; the report's
last line (JSON) must find the planted rates, a significant difference where there is one and
none where there is none, and count every anomaly that was planted.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson
import pytest
from kafka import KafkaProducer

from recs.abtest import cli as ab_cli
from recs.abtest.experiments import DEFAULT_PATH, ExperimentConfigError, load_experiments
from recs.abtest.report import choose_experiments, main, parse_since
from recs.cli import COMMANDS
from schemas.events import Interaction

T0 = 1_800_000_000_000  # 2027-01-15
EXPERIMENT = "homepage-ranking"
ITEMS = [f"i{n}" for n in range(300)]


def planted_log(rates: dict[str, float], responses: int, seed: int) -> list[Interaction]:
    """``responses`` impressions per variant; each is clicked with its variant's rate (one shown
    item, sometimes also carted and bought). Users are assigned to one variant each."""
    rng = random.Random(seed)
    timed: list[tuple[int, Interaction]] = []
    for variant, rate in rates.items():
        label = f"{EXPERIMENT}/{variant}"
        for k in range(responses):
            user = f"{variant}-u{rng.randrange(responses // 3)}"
            rec, ts = f"{variant}-r{k}", T0 + rng.randrange(3_600_000)
            shown = tuple(rng.sample(ITEMS, 5))
            timed.append((ts, Interaction(f"{rec}-imp", "impression", user, f"{user}-s", ts,
                                          item_ids=shown, rec_id=rec, variant=label)))
            if rng.random() >= rate:
                continue
            item = rng.choice(shown)
            steps = ["click"]
            if rng.random() < 0.3:
                steps.append("add_to_cart")
                if rng.random() < 0.5:
                    steps.append("purchase")
            for n, etype in enumerate(steps, 1):
                timed.append((ts + 1_000 * n, Interaction(
                    f"{rec}-{etype}", etype, user, f"{user}-s", ts + 1_000 * n, item_id=item,
                    rec_id=rec, variant=label)))
    timed.sort(key=lambda pair: pair[0])
    return [event for _, event in timed]


def publish(bootstrap: str, topic: str, events: list[Interaction],
            raw: Sequence[bytes | None] = ()) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=20)
    try:
        for event in events:
            producer.send(topic, key=event.user_id.encode(), value=event.to_json())
        for value in raw:
            producer.send(topic, key=b"bad", value=value)
        producer.flush(timeout=60)
    finally:
        producer.close()


def run_report(capsys: pytest.CaptureFixture[str], argv: list[str]) -> tuple[str, dict[str, Any]]:
    code = main(argv)
    out = capsys.readouterr().out
    assert code == 0, out
    doc: dict[str, Any] = orjson.loads(out.strip().splitlines()[-1])
    return out, doc


def variants_of(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    (exp,) = [e for e in doc["experiments"] if e["name"] == EXPERIMENT]
    return {v["name"]: v for v in exp["variants"]}


def test_ab_is_a_recs_command() -> None:
    assert COMMANDS["ab"][0] == "recs.abtest.cli"
    assert "report" in ab_cli.SUBCOMMANDS


@pytest.mark.integration
def test_a_planted_difference_is_found(kafka: Any, fresh_topics: Any, tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    (topic,) = fresh_topics("interactions", partitions=4)
    publish(kafka.bootstrap, topic,
            planted_log({"blend": 0.10, "diverse": 0.15}, responses=3_000, seed=11))
    config = tmp_path / "experiments.toml"
    config.write_text(f"""
[[experiment]]
name = "{EXPERIMENT}"
placements = ["homepage"]
control = "blend"
salt = "2026-11"
[[experiment.variant]]
name = "blend"
weight = 50
strategy = "blend"
params = {{}}
[[experiment.variant]]
name = "diverse"
weight = 50
strategy = "blend"
params = {{ mmr_lambda = 0.6 }}
""")
    out, doc = run_report(capsys, ["--bootstrap", kafka.bootstrap, "--topic", topic,
                                   "--experiments", str(config), "--alpha", "0.05"])
    assert "| blend (control) | 3000 |" in out
    assert doc["experiments_file"] == str(config)
    assert doc["undecodable"] == 0 and doc["counts"]["unattributed"]["total"] == 0
    (exp,) = doc["experiments"]
    assert (exp["control"], exp["control_source"]) == ("blend", "config")
    v = variants_of(doc)
    assert v["blend"]["responses"] == v["diverse"]["responses"] == 3_000
    assert v["blend"]["ctr"]["rate"] == pytest.approx(0.10, abs=0.02)
    assert v["diverse"]["ctr"]["rate"] == pytest.approx(0.15, abs=0.02)
    assert v["blend"]["vs_control"] is None
    ctr = v["diverse"]["vs_control"]["ctr"]
    assert ctr["lift_ci"][0] > 0 and ctr["lift_ci"][0] <= ctr["lift"] <= ctr["lift_ci"][1]
    assert ctr["p_value"] < 0.05 and ctr["significant"] is True
    # one click per clicked response: per-item CTR is CTR / 5 shown items
    assert v["diverse"]["item_ctr"]["rate"] == pytest.approx(
        v["diverse"]["ctr"]["rate"] / 5, rel=1e-9)


@pytest.mark.integration
def test_equal_rates_are_not_significant_and_anomalies_are_counted(
        kafka: Any, fresh_topics: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """A/A at 12% with 2,000 responses each. Any seed has a 5% chance of a significant A/A
    result, so the seed is fixed: seed 5 gives 231 vs 251 clicked responses, p = 0.33."""
    (topic,) = fresh_topics("interactions", partitions=3)
    events = planted_log({"control": 0.12, "treatment": 0.12}, responses=2_000, seed=5)
    rng = random.Random(99)
    impressions = [e for e in events if e.type == "impression"]
    stray = [Interaction(f"stray-{n}", "click", "u-x", "s-x", T0 + n, item_id="i1",
                         rec_id=f"no-such-rec-{n}", variant=f"{EXPERIMENT}/control")
             for n in range(7)]
    unshown = [Interaction(f"unshown-{n}", "click", imp.user_id, imp.session_id, imp.ts + 5,
                           item_id="not-in-catalogue", rec_id=imp.rec_id, variant=imp.variant)
               for n, imp in enumerate(rng.sample(impressions, 5))]
    organic = [Interaction(f"organic-{n}", "view", f"u{n}", "s", T0 + n, item_id="i2")
               for n in range(20)]
    redelivered = [*rng.sample(events, 50), stray[0]]
    garbage: list[bytes | None] = [b"not json", b"{}", None,
                                   b'{"event_id":"x","type":"like","user_id":"u",'
                                   b'"session_id":"s","ts":1800000000000}']
    publish(kafka.bootstrap, topic, [*events, *stray, *unshown, *organic, *redelivered],
            garbage)
    monkeypatch.chdir(tmp_path)  # no experiments file at the default path: control inferred
    out, doc = run_report(capsys, ["--bootstrap", kafka.bootstrap, "--topic", topic])
    total = len(events) + len(stray) + len(unshown) + len(organic) + len(redelivered)
    assert doc["records"] == total + len(garbage)
    assert doc["undecodable"] == len(garbage) and len(doc["undecodable_examples"]) == 3
    counts = doc["counts"]
    assert counts["duplicates"] == len(redelivered)
    assert counts["organic"] == len(organic)
    assert counts["unattributed"] == {"no_impression": 7, "item_not_shown": 5, "no_variant": 0,
                                      "total": 12}
    assert doc["experiments_file"] is None
    assert any("no experiments file" in n for n in doc["notes"])
    (exp,) = doc["experiments"]
    assert (exp["control"], exp["control_source"]) == ("control", "inferred")
    assert exp["users_in_several_variants"] == 0
    v = variants_of(doc)
    for name in ("control", "treatment"):
        assert v[name]["responses"] == 2_000
        assert v[name]["ctr"]["rate"] == pytest.approx(0.12, abs=0.02)
    ctr = v["treatment"]["vs_control"]["ctr"]
    assert ctr["p_value"] >= 0.05 and ctr["significant"] is False
    assert ctr["lift_ci"][0] < 0 < ctr["lift_ci"][1]
    assert "unattributed outcomes: 12" in out

    # --json prints the JSON line only; --since after every response leaves nothing to report
    code = main(["--bootstrap", kafka.bootstrap, "--topic", topic, "--json",
                 "--since", str(T0 + 10 * 3_600_000)])
    lines = capsys.readouterr().out.strip().splitlines()
    assert code == 0 and len(lines) == 1
    late = orjson.loads(lines[0])
    assert late["experiments"] == [] and late["counts"]["impressions_before_since"] == 4_000


@pytest.mark.integration
def test_a_missing_topic_is_an_error_naming_it(kafka: Any,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["--bootstrap", kafka.bootstrap, "--topic", "no-such-topic-ab", "--timeout", "20"])
    assert code == 1
    assert "'no-such-topic-ab' not found" in capsys.readouterr().err


def test_bad_arguments_name_the_option_and_value(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--alpha", "1.5"])
    assert "--alpha: expected a number in (0, 1), got '1.5'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--since", "last week"])
    assert "--since: expected epoch milliseconds or an ISO 8601 time, got 'last week'" in \
        capsys.readouterr().err
    bad = tmp_path / "x.toml"
    bad.write_text('[[experiment]]\nname = "x"\nplacements = ["homepage"]\ncontrol = "c"\n'
                   '[[experiment.variant]]\nname = "a"\nweight = 1\n')
    assert main(["--experiments", str(bad)]) == 2
    assert "experiment 'x'.control must be one of ['a'], got 'c'" in capsys.readouterr().err
    assert main(["--experiments", str(tmp_path / "missing.toml")]) == 2
    assert "cannot read missing.toml" in capsys.readouterr().err
    assert parse_since("2027-01-15T08:00:00+00:00") == parse_since("1800000000000") == T0


def test_the_ab_dispatcher(capsys: pytest.CaptureFixture[str]) -> None:
    assert ab_cli.main(["nope"]) == 2
    assert "unknown subcommand 'nope'" in capsys.readouterr().err


def test_recs_ab_dispatches_to_the_report(capsys: pytest.CaptureFixture[str]) -> None:
    from recs.cli import main as recs_main

    assert recs_main(["ab"]) == 0
    assert "report" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        recs_main(["ab", "report", "--alpha", "0"])
    assert "--alpha: expected a number in (0, 1), got '0'" in capsys.readouterr().err


VARIANTS_AB = '[[experiment.variant]]\nname = "a"\n[[experiment.variant]]\nname = "b"\n'


def test_experiments_file_is_validated_by_the_servers_parser(tmp_path: Path) -> None:
    bad = tmp_path / "exp.toml"
    bad.write_text('[[experiment]]\nname = "x"\nplacements = ["homepage"]\ncontrol = "z"\n'
                   + VARIANTS_AB.replace('name = "a"', 'name = "a"\nweight = 1')
                   .replace('name = "b"', 'name = "b"\nweight = 1'))
    with pytest.raises(ExperimentConfigError,
                       match=r"control must be one of \['a', 'b'\], got 'z'"):
        load_experiments(bad)
    bad.write_text("[[experiment]\n")
    with pytest.raises(ExperimentConfigError, match=r"cannot read exp\.toml"):
        load_experiments(bad)


def test_the_default_experiments_file_is_used_when_present(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert choose_experiments(None)[:2] == ((), None)
    DEFAULT_PATH.parent.mkdir(parents=True)
    DEFAULT_PATH.write_text('[[experiment]]\nname = "x"\nplacements = ["homepage"]\n'
                            'control = "b"\n' + VARIANTS_AB.replace('"\n', '"\nweight = 1\n'))
    configured, used, note = choose_experiments(None)
    assert [(e.name, e.control, e.variants) for e in configured] == [("x", "b", ("a", "b"))]
    assert used == str(DEFAULT_PATH) and note == f"experiments from {DEFAULT_PATH}"

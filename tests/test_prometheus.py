"""Prometheus configuration, alert rules, the Grafana dashboard, and a real Prometheus scraping
the real server.

Real binaries, no mocks: ``promtool`` checks the configuration and the rules and runs their unit
tests (``infra/prometheus/alerts_test.yml``); a local ``prometheus`` scrapes ``recs serve`` once
a second while requests flow. When the binaries are missing the module runs
``infra/ensure-prometheus.sh`` once, and skips only when that cannot install them.

Drift guards: ``alerts.yml`` and ``prometheus.yml`` are the renderings of their sources; every
metric an alert or a dashboard panel queries is in the catalogue of ``docs/observability.md``;
every alert's runbook link has its section there; the dashboard's threshold lines are the
alerts' thresholds.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from infra import alerting
from infra.alerting import ALERTS_PATH, RULE_TESTS_PATH, thresholds
from infra.prometheus_server import (
    CONFIG_PATH,
    PrometheusServer,
    example_config,
    render_config,
    value_of,
)
from recs.settings import Settings
from state.redis_store import RedisStore
from stream.monitor_kafka import BLEND_GROUP
from tests.serving.kit import creds, fill, server_auth, serving_http

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "observability.md"
OWN_SECTION = "## Alerts and dashboards"
GRAFANA = REPO / "infra" / "grafana"
DASHBOARD = GRAFANA / "dashboards" / "recs-engine.json"
NOT_IN_CATALOGUE = {"up"}  # Prometheus' own series
ROWS = ["Ingest", "Stream health", "Freshness", "Models", "Serving"]


# ---- binaries ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def promtool() -> str:
    """``promtool``'s path, installing Prometheus with infra/ensure-prometheus.sh if needed."""
    if shutil.which("promtool") is None or shutil.which("prometheus") is None:
        done = subprocess.run(["bash", str(REPO / "infra" / "ensure-prometheus.sh")],
                              capture_output=True, text=True, check=False, timeout=900)
        if done.returncode != 0:
            pytest.skip("prometheus/promtool are not installed and cannot be installed here "
                        f"(infra/ensure-prometheus.sh failed):\n{done.stderr or done.stdout}")
    found = shutil.which("promtool")
    assert found is not None, "ensure-prometheus.sh succeeded but promtool is not on PATH"
    return found


def run_promtool(promtool: str, *args: str | Path) -> str:
    done = subprocess.run([promtool, *map(str, args)], capture_output=True, text=True,
                          check=False, timeout=120)
    out = done.stdout + done.stderr
    assert done.returncode == 0, f"promtool {' '.join(map(str, args))} failed:\n{out}"
    return out


# ---- the catalogue and PromQL ----------------------------------------------------------------

def catalogue() -> dict[str, str]:
    """``{metric: type}`` from the tables of docs/observability.md (above our own section)."""
    text = DOC.read_text().split(OWN_SECTION)[0]
    found: dict[str, str] = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if not line.startswith("|") or len(cells) < 2:
            continue
        for name in re.findall(r"`(recs_[a-z0-9_]+)`", cells[0]):
            found[name] = cells[1]
    return found


_LABEL_GROUPS = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_KEYWORDS = {"and", "or", "unless", "bool", "offset"}


def promql_metrics(expr: str) -> set[str]:
    """The metric names an expression selects (functions, labels, keywords left out).

    >>> sorted(promql_metrics('sum by (le) (rate(a_bucket{x="y"}[5m])) / on (i) b > 0'))
    ['a_bucket', 'b']
    """
    bare = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    bare = re.sub(r"\{[^}]*\}", " ", bare)
    bare = re.sub(r"\[[^\]]*\]", " ", bare)
    bare = _LABEL_GROUPS.sub(" ", bare)
    names = re.findall(r"([A-Za-z_:][A-Za-z0-9_:]*)(\s*\()?", bare)
    return {n for n, call in names if not call and n not in _KEYWORDS}


def uncatalogued(exprs: list[str]) -> dict[str, list[str]]:
    """Metric names in ``exprs`` that the catalogue does not list, with where they occur."""
    known = catalogue()
    histograms = {n for n, kind in known.items() if "histogram" in kind}
    bad: dict[str, list[str]] = {}
    for expr in exprs:
        for name in promql_metrics(expr):
            base = re.sub(r"_(bucket|sum|count)$", "", name)
            if name in known or name in NOT_IN_CATALOGUE or (base != name and base in histograms):
                continue
            bad.setdefault(name, []).append(expr)
    return bad


def alert_rules() -> list[dict[str, Any]]:
    doc = yaml.safe_load(ALERTS_PATH.read_text())
    return [rule for group in doc["groups"] for rule in group["rules"]]


def dashboard() -> dict[str, Any]:
    doc = json.loads(DASHBOARD.read_text())
    assert isinstance(doc, dict)
    return doc


def graph_panels() -> list[dict[str, Any]]:
    return [p for p in dashboard()["panels"] if p["type"] != "row"]


# ---- thresholds and the rendered files -----------------------------------------------------

def test_catalogue_is_parsed() -> None:
    known = catalogue()
    assert known["recs_http_request_duration_seconds"] == "histogram"
    assert "recs_kafka_committed_offset" in known and "recs_model_version" in known


def test_alerts_yml_is_the_rendering_of_thresholds_and_template() -> None:
    assert ALERTS_PATH.read_text() == alerting.render_alerts(), (
        "infra/prometheus/alerts.yml is stale: run `python -m infra.alerting --write`")
    assert alerting.main(["--check"]) == 0


def test_example_config_is_current() -> None:
    assert CONFIG_PATH.read_text() == example_config(), (
        "infra/prometheus/prometheus.yml is stale: run "
        "`python -m infra.prometheus_server write-config`")


def test_thresholds_are_one_readable_dict() -> None:
    t = thresholds()
    assert set(alerting.SECTIONS) <= set(t)
    assert t["freshness"]["p99_seconds"] == 1.0
    assert t["consumer_lag"]["seconds"] == 60
    assert alerting.seconds(t["consumer_lag"]["records_for"]) == 300.0
    # the alert's "5 intervals" are intervals of the job's checkpointing
    assert t["checkpoints"]["interval_seconds"] * 1000 == Settings().checkpoint_interval_ms
    assert t["checkpoints"]["max_age_seconds"] == 5 * t["checkpoints"]["interval_seconds"]
    t["freshness"]["p99_seconds"] = 99  # a caller's copy: the next call is unaffected
    assert thresholds()["freshness"]["p99_seconds"] == 1.0


@pytest.mark.parametrize(("edit", "message"), [
    (("p99_seconds = 1.0", 'p99_seconds = "fast"'), "freshness.p99_seconds must be a number"),
    (('for = "5m"', "for = 300"), "must be a duration string"),
    (('down_for = "2m"', 'down_for = "2 minutes"'), "is not a Prometheus duration"),
    (("[redis]", "[rediss]"), "no section(s) ['redis']"),
])
def test_bad_thresholds_are_named(edit: tuple[str, str], message: str) -> None:
    text = alerting.THRESHOLDS_PATH.read_text().replace(*edit, 1)
    with pytest.raises(ValueError, match=re.escape(message)):
        alerting.parse_thresholds(text)


def test_template_placeholders_are_checked() -> None:
    with pytest.raises(ValueError, match=r"line 2 names @\{serving.nope\}"):
        alerting.render("a\nx > @{serving.nope}", thresholds())
    with pytest.raises(ValueError, match="malformed placeholder"):
        alerting.render("x > @{serving}", thresholds())


# ---- promtool --------------------------------------------------------------------------------

def test_promtool_checks_the_config_and_its_rules(promtool: str) -> None:
    out = run_promtool(promtool, "check", "config", CONFIG_PATH)
    assert "SUCCESS" in out and "11 rules found" in out


def test_promtool_checks_the_rules(promtool: str) -> None:
    assert "SUCCESS: 11 rules found" in run_promtool(promtool, "check", "rules", ALERTS_PATH)


def test_promtool_rule_unit_tests_pass(promtool: str) -> None:
    assert "SUCCESS" in run_promtool(promtool, "test", "rules", RULE_TESTS_PATH)


def test_every_alert_is_tested_firing_and_not_firing() -> None:
    cases = [case for test in yaml.safe_load(RULE_TESTS_PATH.read_text())["tests"]
             for case in test["alert_rule_test"]]
    for rule in alert_rules():
        mine = [c for c in cases if c["alertname"] == rule["alert"]]
        assert any(c.get("exp_alerts") for c in mine), f"{rule['alert']}: no firing case"
        assert any(not c.get("exp_alerts") for c in mine), f"{rule['alert']}: no quiet case"


def test_every_alert_has_severity_annotations_and_a_runbook_section() -> None:
    headings = {re.sub(r"[^a-z0-9 -]", "", h.lower()).replace(" ", "-")
                for h in re.findall(r"^#+ (.+)$", DOC.read_text(), re.MULTILINE)}
    rules = alert_rules()
    assert len(rules) == 11
    for rule in rules:
        assert rule["labels"]["severity"] in {"critical", "warning"}, rule["alert"]
        notes = rule["annotations"]
        assert {"summary", "description", "runbook", "runbook_url"} <= set(notes), rule["alert"]
        path, _, anchor = notes["runbook_url"].partition("#")
        assert path == "docs/observability.md" and anchor in headings, (
            f"{rule['alert']}: no section for {notes['runbook_url']}")


def test_alerts_query_only_catalogued_metrics() -> None:
    assert uncatalogued([r["expr"] for r in alert_rules()]) == {}


def test_the_blend_learners_group_has_its_own_lag_rule() -> None:
    """The group the rules single out is the one ``recs monitor`` watches for the learner:
    every selector of the job's lag rules leaves it out, RecsBlendLearnerBehind selects it."""
    rules = {r["alert"]: r["expr"] for r in alert_rules()}
    for name in ("RecsConsumerLagGrowing", "RecsConsumerLagHigh"):
        selectors = re.findall(r"recs_kafka_consumer_lag_\w+(\{[^}]*\})?", rules[name])
        assert selectors and set(selectors) == {f'{{group!="{BLEND_GROUP}"}}'}, rules[name]
    assert re.findall(r"recs_kafka_consumer_lag_\w+\{[^}]*\}", rules["RecsBlendLearnerBehind"]) \
        == [f'recs_kafka_consumer_lag_seconds{{group="{BLEND_GROUP}"}}']
    assert f"> {thresholds()['blend_learner']['lag_seconds']}" in rules["RecsBlendLearnerBehind"]


# ---- Grafana ---------------------------------------------------------------------------------

def test_dashboard_is_a_grafana_dashboard_model() -> None:
    doc = dashboard()
    assert doc["uid"] == "recs-engine" and doc["title"]
    assert isinstance(doc["schemaVersion"], int) and doc["schemaVersion"] >= 36
    variables = {v["name"]: v for v in doc["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    ids = [p["id"] for p in doc["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    cells: set[tuple[int, int]] = set()
    for p in doc["panels"]:
        g = p["gridPos"]
        assert all(isinstance(g[k], int) for k in "hwxy") and g["x"] + g["w"] <= 24, p["title"]
        mine = {(x, y) for x in range(g["x"], g["x"] + g["w"])
                for y in range(g["y"], g["y"] + g["h"])}
        assert not cells & mine, f"{p['title']} overlaps another panel"
        cells |= mine
    assert [p["title"] for p in doc["panels"] if p["type"] == "row"] == ROWS
    for p in graph_panels():
        assert p["type"] in {"timeseries", "stat"} and p["description"], p["title"]
        assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, p["title"]
        assert p["targets"] and all(t["expr"] and t["refId"] for t in p["targets"]), p["title"]


def test_dashboard_queries_only_catalogued_metrics() -> None:
    exprs = [t["expr"] for p in graph_panels() for t in p["targets"]]
    assert uncatalogued(exprs) == {}


def test_dashboard_shows_the_metrics_the_issue_asks_for() -> None:
    text = DASHBOARD.read_text()
    for name in ("recs_kafka_consumer_lag_records", "recs_kafka_consumer_lag_seconds",
                 "recs_stream_watermark_lag_seconds", "recs_checkpoint_age_seconds",
                 "recs_dlq_events_total", "recs_stream_late_events_total",
                 "recs_freshness_seconds_bucket", "recs_served_data_age_seconds_bucket",
                 "recs_model_age_seconds", "recs_model_version", "recs_ranker_auc",
                 "recs_ranker_log_loss", "recs_http_request_duration_seconds_bucket",
                 "recs_http_requests_total", "recs_cache_hits_total",
                 "recs_answers_degraded_total", "recs_served_items_total",
                 "recs_served_distinct_items) / max(recs_catalogue_items"):
        assert name in text, name


def test_model_panels_say_they_wait_for_online_learning() -> None:
    panels = dashboard()["panels"]
    start = next(i for i, p in enumerate(panels) if p["title"] == "Models")
    end = next(i for i, p in enumerate(panels) if p["title"] == "Serving")
    assert end - start > 1
    for p in panels[start + 1:end]:
        assert "No data until the online-learning issue lands" in p["description"], p["title"]


def test_dashboard_threshold_lines_are_the_alert_thresholds() -> None:
    t = thresholds()
    want = {"Consumer lag (records)": t["consumer_lag"]["records"],
            "Consumer lag (seconds)": t["consumer_lag"]["seconds"],
            "Checkpoint age and duration": t["checkpoints"]["max_age_seconds"],
            "Dead letters by reason": t["dlq"]["events_per_second"],
            "Freshness p50 / p99 by kind": t["freshness"]["p99_seconds"],
            "Latency p50 / p99 per endpoint": t["serving"]["p99_seconds"]}
    got = {p["title"]: p["fieldConfig"]["defaults"]["thresholds"]["steps"][-1]["value"]
           for p in graph_panels() if p["title"] in want}
    assert got == want


def test_grafana_provisioning() -> None:
    sources = yaml.safe_load((GRAFANA / "provisioning/datasources/prometheus.yml").read_text())
    (source,) = sources["datasources"]
    assert sources["apiVersion"] == 1 and source["type"] == "prometheus" and source["url"]
    boards = yaml.safe_load((GRAFANA / "provisioning/dashboards/recs.yml").read_text())
    (provider,) = boards["providers"]
    assert provider["type"] == "file" and provider["options"]["path"]


# ---- a real Prometheus scraping the real server ----------------------------------------------

def request_stream(port: int, stop: threading.Event, counts: list[int],
                   max_requests: int = 3000) -> None:
    """GETs to a few endpoints until ``stop`` or ``max_requests`` (bounded, loopback only)."""
    paths = ["/v1/trending", "/v1/items/i1/similar", "/v1/users/u1/recommendations",
             "/v1/items/nothing/similar"]
    for i in range(max_requests):
        if stop.is_set():
            return
        url = f"http://127.0.0.1:{port}{paths[i % len(paths)]}"
        try:
            with urllib.request.urlopen(urllib.request.Request(url, headers=server_auth()),
                                        timeout=5) as reply:
                reply.read()
        except urllib.error.HTTPError as exc:  # the unknown item's 404 is part of the mix
            exc.read()
            exc.close()
        counts[0] += 1
        time.sleep(0.01)


@pytest.fixture
def filled_url(redis_server: Any, redis_store: RedisStore) -> str:
    fill(redis_store)
    db = redis_store.db
    return str(redis_server.url_for(db))


@pytest.fixture
def prometheus_for(promtool: str, tmp_path: Path) -> Iterator[Any]:
    """``prometheus_for(targets)`` starts a local Prometheus (1 s scrapes); all stopped after."""
    started: list[PrometheusServer] = []

    def start(targets: dict[str, list[str]], **kw: Any) -> PrometheusServer:
        server = PrometheusServer(tmp_path / f"p{len(started)}", targets, scrape_interval="1s",
                                  **kw)
        started.append(server)
        return server.start(bind_to_parent=True)

    yield start
    for server in started:
        server.stop()


@pytest.mark.integration
def test_prometheus_scrapes_the_server(filled_url: str, prometheus_for: Any,
                                       promtool: str, tmp_path: Path) -> None:
    # /metrics is on the private side: Prometheus sends a server key, as in a deployment
    key_file = tmp_path / "scrape.key"
    key_file.write_text(creds().server)
    with serving_http(filled_url) as port:
        prom = prometheus_for({"recs-serve": [f"127.0.0.1:{port}"]},
                              bearer_files={"recs-serve": key_file})
        run_promtool(promtool, "check", "config", prom.config_path)
        stop, counts = threading.Event(), [0]
        load = threading.Thread(target=request_stream, args=(port, stop, counts), daemon=True)
        load.start()
        try:
            serve = 'job="recs-serve"'
            prom.wait_for(f"up{{{serve}}}", lambda s: [value_of(x) for x in s] == [1.0])
            total = f"sum(recs_http_requests_total{{{serve}}})"
            first = prom.wait_for(total, lambda s: bool(s) and value_of(s[0]) > 0)
            prom.wait_for(total, lambda s: value_of(s[0]) > value_of(first[0]), timeout=20)
            assert prom.scalar(f"recs_redis_up{{{serve}}}") == 1.0
            statuses = prom.wait_for(f"sum by (status) (recs_http_requests_total{{{serve}}})",
                                     lambda s: {x["metric"]["status"] for x in s} >= {"200",
                                                                                      "404"})
            assert all(value_of(x) > 0 for x in statuses)
            buckets = prom.query(f"recs_http_request_duration_seconds_bucket{{{serve}}}")
            assert {s["metric"]["le"] for s in buckets} >= {"0.001", "0.05", "+Inf"}
            assert {s["metric"]["endpoint"] for s in buckets} >= {"trending", "similar"}
            p99 = prom.wait_for(
                "histogram_quantile(0.99, sum by (le) "
                f"(rate(recs_http_request_duration_seconds_bucket{{{serve}}}[10s])))",
                lambda s: bool(s) and 0 < value_of(s[0]) < 5)
            assert 0 < value_of(p99[0]) < 5
        finally:
            stop.set()
            load.join(timeout=10)
        assert counts[0] > 0
        rules = prom.query("ALERTS")  # the rules loaded; nothing should be firing here
        assert [r["metric"]["alertname"] for r in rules
                if r["metric"].get("alertstate") == "firing"] == []
        groups = json.loads(urllib.request.urlopen(prom.url + "/api/v1/rules",
                                                   timeout=5).read())["data"]["groups"]
        assert sum(len(g["rules"]) for g in groups) == 11


def test_render_config_rejects_bad_targets() -> None:
    with pytest.raises(ValueError, match="host:port"):
        render_config({"recs-serve": ["localhost"]})

"""A real Prometheus as a local process on a free loopback port, and its scrape configuration.

The configuration is generated (:func:`scrape_config`, :func:`render_config`): one scrape job per
process kind, so every series carries the ``job`` it came from:

* ``recs-serve``: ``recs serve``'s ``/metrics``, on ``RECS_HTTP_PORT`` (8000)
* ``recs-monitor``: ``recs monitor``, on ``RECS_MONITOR_PORT`` (9108)
* ``recs-loader``: ``recs load``, on ``RECS_LOADER_METRICS_PORT`` (9109)
* ``flink``: Flink's Prometheus reporter, on ``RECS_FLINK_METRICS_PORT`` (9249)

``infra/prometheus/prometheus.yml`` is that configuration for the default local ports (with
``alerts.yml`` as its rules), rendered by ``python -m infra.prometheus_server write-config`` and
kept current by a test. Files of a running server under ``<run_dir>/prometheus/``:
``prometheus.yml`` (generated), ``data/``, ``prometheus.out``, ``prometheus.pid``,
``endpoint.json``. It is stopped by its pid, like every local service (:mod:`infra.procs`).

>>> print(render_config({"recs-serve": ["127.0.0.1:8000"]}, rule_files=["alerts.yml"]), end="")
# written by infra/prometheus_server.py
global:
  scrape_interval: "15s"
  evaluation_interval: "15s"
rule_files: ["alerts.yml"]
scrape_configs:
  - job_name: "recs-serve"
    metrics_path: "/metrics"
    static_configs:
      - targets: ["127.0.0.1:8000"]
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import shutil
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Final

from infra.alerting import ALERTS_PATH, PROMETHEUS_DIR
from infra.paths import MissingDependency
from infra.procs import (
    LOOPBACK,
    Proc,
    SinglePortService,
    free_port,
    spawn,
    wait_until,
    write_json,
)
from recs.settings import Settings

log = logging.getLogger(__name__)

CONFIG_PATH: Final = PROMETHEUS_DIR / "prometheus.yml"
JOBS: Final = ("recs-serve", "recs-monitor", "recs-loader", "flink")
_INSTALL_HINT: Final = "run `bash infra/ensure-prometheus.sh`"

Sample = dict[str, Any]  # one element of a query's "result": {"metric": {...}, "value": [t, v]}


def prometheus_binary() -> str:
    found = shutil.which("prometheus")
    if found is None:
        raise MissingDependency(f"infra: `prometheus` is not on PATH; {_INSTALL_HINT}")
    return found


def promtool_binary() -> str:
    found = shutil.which("promtool")
    if found is None:
        raise MissingDependency(f"infra: `promtool` is not on PATH; {_INSTALL_HINT}")
    return found


# ---- configuration ---------------------------------------------------------------------------

def default_targets(settings: Settings, host: str = LOOPBACK) -> dict[str, list[str]]:
    """The scrape targets of one local deployment; a port of 0 (exporter off) is left out.

    >>> default_targets(Settings())["recs-monitor"]
    ['127.0.0.1:9108']
    """
    ports = {"recs-serve": settings.http_port, "recs-monitor": settings.monitor_port,
             "recs-loader": settings.loader_metrics_port, "flink": settings.flink_metrics_port}
    return {job: [f"{host}:{port}"] for job, port in ports.items() if port}


def scrape_config(targets: Mapping[str, Sequence[str]], *, scrape_interval: str = "15s",
                  evaluation_interval: str | None = None,
                  rule_files: Sequence[str | Path] = (),
                  bearer_files: Mapping[str, str | Path] | None = None) -> dict[str, Any]:
    """A Prometheus configuration: one job per ``targets`` key (its ``host:port`` list).
    ``bearer_files`` names, per job, a file holding the API key Prometheus sends
    (``Authorization: Bearer``): the server's ``/metrics`` needs a ``server`` key.

    >>> job = scrape_config({"recs-serve": ["h:8000"]},
    ...                     bearer_files={"recs-serve": "/k"})["scrape_configs"][0]
    >>> job["authorization"]
    {'type': 'Bearer', 'credentials_file': '/k'}
    """
    bearer = dict(bearer_files or {})
    for job, hosts in targets.items():
        bad = [h for h in hosts if h.rpartition(":")[0] == "" or
               not h.rpartition(":")[2].isdigit()]
        if not job or bad:
            raise ValueError(f"infra: scrape job {job!r} needs host:port targets, got {bad}")
    return {
        "global": {"scrape_interval": scrape_interval,
                   "evaluation_interval": evaluation_interval or scrape_interval},
        "rule_files": [str(p) for p in rule_files],
        "scrape_configs": [
            {"job_name": job, "metrics_path": "/metrics",
             "static_configs": [{"targets": list(hosts)}],
             **({"authorization": {"type": "Bearer", "credentials_file": str(bearer[job])}}
                if job in bearer else {})}
            for job, hosts in targets.items()
        ],
    }


def render_config(targets: Mapping[str, Sequence[str]], *, header: str = "",
                  **kwargs: Any) -> str:
    """:func:`scrape_config` as YAML text."""
    return ("# written by infra/prometheus_server.py\n" + header
            + to_yaml(scrape_config(targets, **kwargs)))


def example_config() -> str:
    """The text of the checked-in ``infra/prometheus/prometheus.yml``: the default ports."""
    header = ("# (`python -m infra.prometheus_server write-config`): the default local ports of\n"
              "# recs-engine; `promtool check config infra/prometheus/prometheus.yml` checks it\n"
              "# and its rules. Tests and `... start` generate their own under the run dir.\n")
    return render_config(default_targets(Settings()), header=header,
                         rule_files=[ALERTS_PATH.name])


def to_yaml(value: Mapping[str, Any]) -> str:
    """Block-style YAML of plain data (strings always double-quoted, lists of scalars inline).

    >>> print(to_yaml({"a": [{"b": 1, "c": ["x", "y"]}], "d": True, "e": {}}), end="")
    a:
      - b: 1
        c: ["x", "y"]
    d: true
    e: {}
    """
    return "\n".join(_yaml_lines(value, 0)) + "\n"


def _yaml_scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"infra: YAML config cannot hold {value!r}")
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a valid double-quoted YAML scalar
    raise TypeError(f"infra: no YAML for {type(value).__name__} {value!r}")


def _is_block(value: Any) -> bool:
    if isinstance(value, Mapping):
        return bool(value)
    if isinstance(value, list | tuple):
        return any(isinstance(v, Mapping | list | tuple) for v in value)
    return False


def _yaml_inline(value: Any) -> str:
    if isinstance(value, Mapping):
        return "{}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_yaml_scalar(v) for v in value) + "]"
    return _yaml_scalar(value)


def _yaml_lines(value: Any, indent: int) -> list[str]:
    pad = " " * indent
    out: list[str] = []
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str) or not key.replace("_", "").isalnum():
                raise ValueError(f"infra: YAML key {key!r} is not a plain name")
            if _is_block(item):
                out += [f"{pad}{key}:", *_yaml_lines(item, indent + 2)]
            else:
                out.append(f"{pad}{key}: {_yaml_inline(item)}")
        return out
    for item in value:
        if isinstance(item, list | tuple) and _is_block(item):
            raise ValueError("infra: nested block lists are not supported")
        if _is_block(item):
            first, *rest = _yaml_lines(item, indent + 2)
            out += [f"{pad}- {first.lstrip()}", *rest]
        else:
            out.append(f"{pad}- {_yaml_inline(item)}")
    return out


# ---- the HTTP API ----------------------------------------------------------------------------

def api_get(base_url: str, path: str, params: Mapping[str, str] | None = None,
            timeout: float = 5.0) -> Any:
    """``GET base_url + path`` of the HTTP API; its ``data`` when ``status`` is ``success``."""
    url = base_url.rstrip("/") + path
    if params:
        url += "?" + urllib.parse.urlencode(params)
    try:
        with urllib.request.urlopen(url, timeout=timeout) as reply:
            doc = json.loads(reply.read())
    except urllib.error.HTTPError as exc:  # 400/422 carry the error in a JSON body
        doc = json.loads(exc.read() or b"{}")
    if doc.get("status") != "success":
        raise RuntimeError(f"infra: Prometheus {path} {dict(params or {})} failed: "
                           f"{doc.get('errorType')}: {doc.get('error')}")
    return doc["data"]


def query(base_url: str, expr: str, timeout: float = 5.0) -> list[Sample]:
    """Instant query (``/api/v1/query``): the samples of a vector result.

    Each sample is ``{"metric": {label: value}, "value": [unix_time, "number"]}``; see
    :func:`value_of`.
    """
    data = api_get(base_url, "/api/v1/query", {"query": expr}, timeout)
    if data["resultType"] == "scalar":
        return [{"metric": {}, "value": data["result"]}]
    if data["resultType"] != "vector":
        raise RuntimeError(f"infra: query {expr!r} returned a {data['resultType']}, not a vector")
    return list(data["result"])


def value_of(sample: Sample) -> float:
    return float(sample["value"][1])


# ---- the server ------------------------------------------------------------------------------

class PrometheusServer(SinglePortService):
    """One local Prometheus scraping ``targets`` (``{job: ["host:port", ...]}``).

    ``start()`` is a no-op when it already runs for this run dir. Tests pass
    ``scrape_interval="1s"``; ``rule_files`` defaults to the engine's ``alerts.yml``.
    """

    name = "prometheus"

    def __init__(self, run_dir: Path, targets: Mapping[str, Sequence[str]], *,
                 scrape_interval: str = "15s", rule_files: Sequence[Path] = (ALERTS_PATH,),
                 port: int | None = None, start_timeout_s: float = 30.0,
                 retention: str = "1d",
                 bearer_files: Mapping[str, str | Path] | None = None) -> None:
        self.dir = Path(run_dir).resolve() / "prometheus"
        self.bearer_files = dict(bearer_files or {})
        self.targets = {job: list(hosts) for job, hosts in targets.items()}
        self.scrape_interval = scrape_interval
        self.rule_files = [Path(p).resolve() for p in rule_files]
        self._want_port = port
        self.start_timeout_s = start_timeout_s
        self.retention = retention
        self.port = 0
        self.proc: Proc | None = None

    @property
    def pid_path(self) -> Path:
        return self.dir / "prometheus.pid"

    @property
    def endpoint_path(self) -> Path:
        return self.dir / "endpoint.json"

    @property
    def config_path(self) -> Path:
        return self.dir / "prometheus.yml"

    @property
    def logs(self) -> list[Path]:
        return [self.dir / "prometheus.out"]

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        if not self.port:
            raise RuntimeError("infra: PrometheusServer is not started")
        return f"http://{LOOPBACK}:{self.port}"

    def _markers(self) -> tuple[str, ...]:
        return ("prometheus", f"--web.listen-address={LOOPBACK}:{self.port}")

    def ready(self) -> bool:
        if not self.port:
            return False
        try:
            with urllib.request.urlopen(self.url + "/-/ready", timeout=1.0) as reply:
                return int(reply.status) == 200
        except OSError:
            return False

    def start(self, *, bind_to_parent: bool = False) -> PrometheusServer:
        if self.alive() or (self.proc is None and self.adopt()):
            return self
        began = time.monotonic()
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = self._want_port or free_port()
        self.config_path.write_text(render_config(
            self.targets, scrape_interval=self.scrape_interval, rule_files=self.rule_files,
            bearer_files=self.bearer_files))
        argv = [prometheus_binary(), f"--config.file={self.config_path}",
                f"--storage.tsdb.path={self.dir / 'data'}",
                f"--storage.tsdb.retention.time={self.retention}",
                f"--web.listen-address={LOOPBACK}:{self.port}", "--log.level=warn"]
        self.proc = spawn("prometheus", argv, log=self.logs[0], cwd=self.dir,
                          markers=self._markers(), bind_to_parent=bind_to_parent)
        self.pid_path.write_text(f"{self.proc.pid}\n")
        write_json(self.endpoint_path, {"port": self.port, "url": self.url})
        try:
            wait_until(self.ready, proc=self.proc, timeout=self.start_timeout_s,
                       what="ready (/-/ready)", logs=self.logs)
        except BaseException:
            self.stop()
            raise
        log.info("prometheus up url=%s pid=%s seconds=%.2f", self.url, self.proc.pid,
                 time.monotonic() - began)
        return self

    # -- queries --

    def query(self, expr: str) -> list[Sample]:
        return query(self.url, expr)

    def scalar(self, expr: str) -> float | None:
        """The value of a query with one sample (None when it has none; error when several)."""
        samples = self.query(expr)
        if len(samples) > 1:
            raise RuntimeError(f"infra: {expr!r} has {len(samples)} samples, want one")
        return value_of(samples[0]) if samples else None

    def wait_for(self, expr: str, ok: Callable[[list[Sample]], bool], *,
                 timeout: float = 30.0) -> list[Sample]:
        """Poll ``expr`` until ``ok(samples)``; TimeoutError with the last answer otherwise."""
        deadline = time.monotonic() + timeout
        while True:
            samples = self.query(expr)
            if ok(samples):
                return samples
            if time.monotonic() > deadline:
                raise TimeoutError(f"infra: {expr!r} did not satisfy the check after "
                                   f"{timeout:.0f} s; last answer {samples}")
            time.sleep(0.25)

    def active_targets(self) -> list[dict[str, Any]]:
        """``/api/v1/targets``: each target's ``labels``, ``health``, ``lastError``."""
        return list(api_get(self.url, "/api/v1/targets")["activeTargets"])


# ---- command line ----------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.prometheus_server",
                                     description="the engine's Prometheus")
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("write-config", help="render infra/prometheus/prometheus.yml")
    sub.add_parser("check-config", help="exit 1 when prometheus.yml is not up to date")
    sub.add_parser("start", help="a Prometheus scraping this deployment's ports, in the "
                                 "background under the run dir; prints its URL")
    sub.add_parser("stop", help="stop it by its recorded pid")
    args = parser.parse_args(argv)
    if args.cmd == "write-config":
        CONFIG_PATH.write_text(example_config())
        print(f"wrote {CONFIG_PATH}")
        return 0
    if args.cmd == "check-config":
        current = CONFIG_PATH.read_text() if CONFIG_PATH.exists() else ""
        if current != example_config():
            print(f"{CONFIG_PATH} is out of date: run python -m infra.prometheus_server "
                  "write-config", file=sys.stderr)
            return 1
        print(f"{CONFIG_PATH} is up to date")
        return 0
    settings = Settings.from_env()
    server = PrometheusServer(settings.run_dir, default_targets(settings))
    if args.cmd == "stop":
        server.stop()
        return 0
    print(server.start().url)
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s %(message)s")
    raise SystemExit(main())

"""Bring up the services the engine needs (Kafka with its topics, Redis) and the ``recs infra`` CLI.

Resolution, per service:

1. ``KAFKA_BOOTSTRAP`` / ``REDIS_URL`` set: use that service as it is (topics are still created
   on an external Kafka).
2. Otherwise, by ``RECS_INFRA`` (``auto`` by default): ``local`` starts real processes on free
   loopback ports under the run dir (:mod:`infra.kafka_broker`, :mod:`infra.redis_server`);
   ``docker`` starts testcontainers (:mod:`infra.containers`); ``auto`` picks local when Java, the
   broker jars and ``redis-server`` are installed, else Docker when an engine answers.

``recs infra up`` starts the local processes detached (they outlive the command) and records them
in ``<run_dir>/services.json`` plus ``<run_dir>/services.env`` (export lines);
``recs infra down`` stops them by their recorded pids; ``recs infra status`` reports them.

``recs infra up --cluster`` starts the cluster topology instead, each on loopback under the run
dir: a three-broker KRaft Kafka (:mod:`infra.kafka_cluster`), a Redis Cluster of three masters
with a replica each (:mod:`infra.redis_cluster`) and a Flink standalone cluster, one JobManager
and two one-slot TaskManagers (:mod:`infra.flink_cluster`; ``recs job --cluster`` submits to
it). ``KAFKA_BOOTSTRAP`` / ``REDIS_URL`` still select external services.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import shutil
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Final
from urllib.parse import urlsplit, urlunsplit

from infra import containers
from infra.flink_cluster import FlinkCluster
from infra.kafka_broker import KafkaBroker
from infra.kafka_cluster import KafkaCluster
from infra.paths import MissingDependency, flink_connector_jar, local_prerequisites
from infra.procs import read_json, write_json
from infra.redis_cluster import RedisCluster
from infra.redis_server import RedisServer
from infra.topics import default_topics, ensure_topics
from recs.settings import Settings

__all__ = ["ExternalKafka", "ExternalRedis", "KafkaBroker", "RedisServer", "Services",
           "flink_connector_jar", "main"]

log = logging.getLogger(__name__)

MODES: Final = ("auto", "local", "docker")
STATE_FILE: Final = "services.json"
ENV_FILE: Final = "services.env"


class ExternalKafka:
    """A broker somebody else runs (``KAFKA_BOOTSTRAP``); never stopped by us."""

    managed = False

    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap

    def stop(self) -> None:
        """Nothing to do: we did not start it."""


class ExternalRedis:
    """A Redis somebody else runs (``REDIS_URL``); it cannot be killed or restarted by tests."""

    managed = False

    def __init__(self, url: str) -> None:
        self.url = url

    def url_for(self, db: int) -> str:
        parts = urlsplit(self.url)
        return urlunsplit(parts._replace(path=f"/{db}"))

    def kill(self) -> None:
        raise RuntimeError(f"infra: Redis at {self.url} is external (REDIS_URL); it cannot be "
                           "killed by the tests; check `.managed` first")

    def restart(self) -> ExternalRedis:
        return self

    def stop(self) -> None:
        """Nothing to do: we did not start it."""


def _first(env: Mapping[str, str], *names: str) -> str | None:
    return next((env[n] for n in names if env.get(n)), None)


class Services:
    """Context manager yielding a running Kafka (with topics) and Redis.

    >>> with Services(run_dir) as svc:                                      # doctest: +SKIP
    ...     svc.bootstrap, svc.redis_url, svc.settings.kafka_bootstrap
    """

    def __init__(self, run_dir: Path | None = None, *, settings: Settings | None = None,
                 env: Mapping[str, str] | None = None, mode: str | None = None,
                 bind_to_parent: bool = False, kafka_port: int | None = None,
                 redis_port: int | None = None, kafka: bool = True, redis: bool = True) -> None:
        env = os.environ if env is None else env
        self.base_settings = settings if settings is not None else Settings.from_env(env)
        self.run_dir = Path(run_dir if run_dir is not None else self.base_settings.run_dir)
        self.mode = mode or env.get("RECS_INFRA", "auto")
        if self.mode not in MODES:
            raise ValueError(f"infra: RECS_INFRA={self.mode!r}, expected one of {MODES}")
        self.external_kafka = _first(env, "KAFKA_BOOTSTRAP", "RECS_KAFKA_BOOTSTRAP")
        self.external_redis = _first(env, "REDIS_URL", "RECS_REDIS_URL")
        self.bind_to_parent = bind_to_parent
        self.kafka_port, self.redis_port = kafka_port, redis_port
        self.want_kafka, self.want_redis = kafka, redis
        self.kafka: Any = None  # KafkaBroker | KafkaInDocker | ExternalKafka
        self.redis: Any = None  # RedisServer | RedisInDocker | ExternalRedis
        self.backend = ""

    @property
    def bootstrap(self) -> str:
        return str(self.kafka.bootstrap)

    @property
    def redis_url(self) -> str:
        return str(self.redis.url)

    @property
    def settings(self) -> Settings:
        """The base settings pointed at the running services."""
        return dataclasses.replace(self.base_settings, kafka_bootstrap=self.bootstrap,
                                   redis_url=self.redis_url, run_dir=self.run_dir)

    def choose_backend(self) -> str:
        need_kafka = self.want_kafka and self.external_kafka is None
        need_redis = self.want_redis and self.external_redis is None
        if not (need_kafka or need_redis):
            return "external"
        if self.mode != "auto":
            return self.mode
        missing = local_prerequisites(kafka=need_kafka, redis=need_redis)
        if not missing:
            return "local"
        if containers.docker_available():
            log.info("local prerequisites missing, using Docker: %s", "; ".join(missing))
            return "docker"
        raise MissingDependency("infra: cannot start the services locally and no Docker engine "
                                "answers:\n  " + "\n  ".join(missing))

    def start(self) -> Services:
        started = time.monotonic()
        self.backend = self.choose_backend()
        try:
            if self.want_redis:
                self.redis = self._start_redis()
            if self.want_kafka:
                self.kafka = self._start_kafka()
        except BaseException:
            self.stop()
            raise
        log.info("services up backend=%s kafka=%s redis=%s seconds=%.1f", self.backend,
                 self.kafka and self.bootstrap, self.redis and self.redis_url,
                 time.monotonic() - started)
        return self

    def _start_redis(self) -> Any:
        if self.external_redis is not None:
            return ExternalRedis(self.external_redis)
        if self.backend == "docker":
            return containers.RedisInDocker().start()
        return RedisServer(self.run_dir, port=self.redis_port).start(
            bind_to_parent=self.bind_to_parent)

    def _start_kafka(self) -> Any:
        topics = default_topics(self.base_settings)
        if self.external_kafka is not None:
            ensure_topics(self.external_kafka, topics)
            return ExternalKafka(self.external_kafka)
        if self.backend == "docker":
            broker = containers.KafkaInDocker().start()
            ensure_topics(broker.bootstrap, topics)
            return broker
        return KafkaBroker(self.run_dir, port=self.kafka_port, topics=topics).start(
            bind_to_parent=self.bind_to_parent)

    def stop(self) -> None:
        for svc in (self.kafka, self.redis):
            if svc is not None:
                svc.stop()

    def __enter__(self) -> Services:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def describe(self) -> dict[str, Any]:
        """What ``services.json`` records."""
        def entry(svc: Any, address: dict[str, Any]) -> dict[str, Any]:
            kind = "external" if not getattr(svc, "managed", False) else self.backend
            return {"mode": kind, "pid": getattr(svc, "pid", None), **address}

        return {"kafka": entry(self.kafka, {"bootstrap": self.bootstrap,
                                            "port": getattr(self.kafka, "port", None)}),
                "redis": entry(self.redis, {"url": self.redis_url,
                                            "port": getattr(self.redis, "port", None)}),
                "run_dir": str(self.run_dir.resolve())}


# -- recs infra up | down | status ------------------------------------------------------------

def _exports(state: Mapping[str, Any]) -> str:
    lines = (f"export KAFKA_BOOTSTRAP={state['kafka']['bootstrap']}\n"
             f"export REDIS_URL={state['redis']['url']}\n")
    if "flink" in state:  # recs monitor reads the job's checkpoints and metrics there
        lines += f"export RECS_FLINK_REST_PORT={state['flink']['rest'].rpartition(':')[2]}\n"
    return lines


def _up(run_dir: Path, args: argparse.Namespace) -> int:
    if args.cluster:
        return _up_cluster(run_dir, args)
    svc = Services(run_dir, mode="local" if args.local else None,
                   kafka_port=args.kafka_port, redis_port=args.redis_port)
    if svc.choose_backend() == "docker":
        print("recs infra up: only local processes outlive this command; with Docker use\n"
              "  docker compose -f infra/docker-compose.yml up -d", file=sys.stderr)
        return 2
    started = time.monotonic()
    svc.start()  # each service adopts an instance already running for this run dir
    state = svc.describe()
    write_json(run_dir / STATE_FILE, state)
    (run_dir / ENV_FILE).write_text(_exports(state))
    if args.quiet:
        print(_exports(state), end="")
        return 0
    print(f"kafka  {state['kafka']['bootstrap']}  ({state['kafka']['mode']}, "
          f"pid {state['kafka']['pid']})")
    print(f"redis  {state['redis']['url']}  ({state['redis']['mode']}, "
          f"pid {state['redis']['pid']})")
    print(f"up in {time.monotonic() - started:.1f} s; state in {run_dir / STATE_FILE}\n")
    print(_exports(state), end="")
    print(f"# or: source {run_dir / ENV_FILE}")
    return 0


def _up_cluster(run_dir: Path, args: argparse.Namespace) -> int:
    """The cluster topology; each part adopts an instance already running for this run dir."""
    started = time.monotonic()
    env = os.environ
    kafka_url = _first(env, "KAFKA_BOOTSTRAP", "RECS_KAFKA_BOOTSTRAP")
    redis_url = _first(env, "REDIS_URL", "RECS_REDIS_URL")
    topics = default_topics(Settings.from_env(env))
    state: dict[str, Any] = {"topology": "cluster", "run_dir": str(run_dir)}
    running: list[Any] = []
    try:
        if kafka_url is not None:
            ensure_topics(kafka_url, topics)
            state["kafka"] = {"mode": "external", "pid": None, "bootstrap": kafka_url}
        else:
            running.append(KafkaCluster(run_dir, topics=topics).start())
            state["kafka"] = {"mode": "local", "pid": running[-1].pids[0],
                              **running[-1].describe()}
        if redis_url is not None:
            state["redis"] = {"mode": "external", "pid": None, "url": redis_url}
        else:
            running.append(RedisCluster(run_dir).start())
            state["redis"] = {"mode": "local", "pid": running[-1].pid, **running[-1].describe()}
        running.append(FlinkCluster(run_dir).start())
        state["flink"] = {"mode": "local", "pid": running[-1].pid, **running[-1].describe()}
    except BaseException:
        for svc in reversed(running):
            svc.stop()
        raise
    write_json(run_dir / STATE_FILE, state)
    (run_dir / ENV_FILE).write_text(_exports(state))
    if args.quiet:
        print(_exports(state), end="")
        return 0
    for name, address in (("kafka", "bootstrap"), ("redis", "url"), ("flink", "rest_url")):
        entry = state[name]
        print(f"{name:6} {entry[address]}  ({entry['mode']}, pids {entry.get('pids')})")
    print(f"up in {time.monotonic() - started:.1f} s; state in {run_dir / STATE_FILE}\n")
    print(_exports(state), end="")
    print(f"# or: source {run_dir / ENV_FILE}\n# then: recs job --cluster")
    return 0


def _down(run_dir: Path, args: argparse.Namespace) -> int:
    # The components adopt their processes from the pid + endpoint files, check the command line
    # still is theirs, then SIGTERM (SIGKILL after a grace period). Nothing is matched by name.
    flink = FlinkCluster(run_dir)
    if flink.adopt():
        print(f"stopping flink (pids {[n.pid for n in flink.nodes]})")
    flink.stop()
    for name, cluster in (("kafka cluster", KafkaCluster(run_dir)),
                          ("redis cluster", RedisCluster(run_dir))):
        if cluster.state_path.exists():
            print(f"stopping {name}")
            cluster.stop()
    kafka, redis = KafkaBroker(run_dir), RedisServer(run_dir)
    for name, svc in (("kafka", kafka), ("redis", redis)):
        if svc.adopt():
            print(f"stopping {name} (pid {svc.pid})")
        svc.stop()
    (run_dir / STATE_FILE).unlink(missing_ok=True)
    (run_dir / ENV_FILE).unlink(missing_ok=True)
    if args.purge:
        for sub in ("kafka", "redis", "kafka-cluster", "redis-cluster", "flink"):
            shutil.rmtree(run_dir / sub, ignore_errors=True)
    print("down")
    return 0


def _status(run_dir: Path, args: argparse.Namespace) -> int:
    state = read_json(run_dir / STATE_FILE) or {}
    if state.get("topology") == "cluster":
        return _status_cluster(run_dir, state)
    checks = (("kafka", KafkaBroker(run_dir), "bootstrap"), ("redis", RedisServer(run_dir), "url"))
    return 0 if _print_status(checks, state, lambda svc: f"pid {svc.pid}") else 3


def _print_status(checks: Sequence[tuple[str, Any, str]], state: Mapping[str, Any],
                  pids: Callable[[Any], str]) -> bool:
    """One line per service (external, up with its address and pids, or down); True when
    every one is up or external."""
    all_up = True
    for name, svc, address in checks:
        recorded = state.get(name, {})
        if recorded.get("mode") == "external":
            print(f"{name}  external  {recorded.get(address)}")
        elif svc.adopt():
            print(f"{name}  up  {getattr(svc, address)}  {pids(svc)}")
        else:
            print(f"{name}  down")
            all_up = False
    return all_up


def _status_cluster(run_dir: Path, state: Mapping[str, Any]) -> int:
    kafka, redis, flink = KafkaCluster(run_dir), RedisCluster(run_dir), FlinkCluster(run_dir)
    checks = (("kafka", kafka, "bootstrap"), ("redis", redis, "url"), ("flink", flink, "rest_url"))
    all_up = _print_status(checks, state, lambda svc: f"pids {svc.describe()['pids']}")
    info = flink.overview()
    if info is not None:
        print(f"flink  {info['taskmanagers']} TaskManagers, {info['slots-available']} of "
              f"{info['slots-total']} slots free, {info['jobs-running']} jobs running")
    return 0 if all_up else 3


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="recs infra",
                                     description="local Kafka (KRaft), Redis and Flink")
    parser.add_argument("--run-dir", type=Path, help="default: $RECS_RUN_DIR or ./run")
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start Kafka + Redis in the background (idempotent)")
    up.add_argument("--kafka-port", type=int)
    up.add_argument("--redis-port", type=int)
    up.add_argument("--local", action="store_true", help="never use Docker")
    up.add_argument("--cluster", action="store_true",
                    help="the cluster topology: 3 Kafka brokers, a Redis Cluster (3 masters, "
                         "1 replica each), a Flink standalone cluster (2 TaskManagers)")
    up.add_argument("-q", "--quiet", action="store_true",
                    help="print only the export lines: eval \"$(recs infra up -q)\"")
    down = sub.add_parser("down", help="stop what `up` started, by recorded pid")
    down.add_argument("--purge", action="store_true", help="also delete Kafka's data")
    sub.add_parser("status", help="exit 0 when all run, 3 otherwise")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s %(message)s")
    logging.getLogger("infra").setLevel(logging.INFO)
    run_dir = (args.run_dir or Settings.from_env().run_dir).resolve()
    handlers = {"up": _up, "down": _down, "status": _status}
    try:
        return handlers[args.command](run_dir, args)
    except (MissingDependency, RuntimeError, TimeoutError) as exc:
        print(f"recs infra {args.command}: {exc}", file=sys.stderr)
        return 1

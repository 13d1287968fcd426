"""Where the resolved jars and the shipped configuration live.

``infra/lib/`` is filled by ``bash infra/fetch-jars.sh`` (run by ``make install``) from
``infra/pom.xml``; nothing under it is committed.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import site
from pathlib import Path
from typing import Final

INFRA_DIR: Final = Path(__file__).resolve().parent
LIB_DIR: Final = INFRA_DIR / "lib"
KAFKA_LIB: Final = LIB_DIR / "kafka"
FLINK_LIB: Final = LIB_DIR / "flink"
LOG4J_CONFIG: Final = INFRA_DIR / "log4j2.properties"
CONNECTOR_GLOB: Final = "flink-sql-connector-kafka-*.jar"
PROMETHEUS_REPORTER_GLOB: Final = "metrics-prometheus/flink-metrics-prometheus-*.jar"

_HOW_TO_FETCH: Final = "run `make install` or `bash infra/fetch-jars.sh` (needs Java 17 and Maven)"


class MissingDependency(RuntimeError):
    """A binary or jar the local services need is not installed."""


def python_path() -> list[str]:
    """The import path thread-mode Python needs inside a Flink JVM: this project and this
    interpreter's site-packages (the embedded interpreter does not see the virtualenv)."""
    return [str(INFRA_DIR.parent), *site.getsitepackages()]


def flink_connector_jar(lib_dir: Path = FLINK_LIB) -> Path:
    """The shaded ``flink-sql-connector-kafka`` jar PyFlink jobs add with ``add_jars``."""
    jars = sorted(lib_dir.glob(CONNECTOR_GLOB))
    if not jars:
        raise MissingDependency(
            f"infra: no {CONNECTOR_GLOB} in {lib_dir}; {_HOW_TO_FETCH}")
    return jars[-1]


def pyflink_home() -> Path:
    """The installed PyFlink package: a Flink distribution (``bin/``, ``lib/``, ``opt/``,
    ``plugins/``, ``conf/``) inside the wheel."""
    spec = importlib.util.find_spec("pyflink")
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependency("infra: PyFlink is not installed in this interpreter")
    return Path(next(iter(spec.submodule_search_locations)))


def pyflink_plugins_dir() -> Path:
    """The ``plugins/`` directory of the installed PyFlink (its wheel ships Flink's reporters)."""
    return pyflink_home() / "plugins"


def flink_prometheus_jar(plugins_dir: Path | None = None) -> Path:
    """Flink's Prometheus metric reporter, as PyFlink's wheel ships it (same Flink version).

    The local mini-cluster loads no plugins, so the job puts this jar on ``pipeline.jars``,
    which PyFlink also adds to the class loader the mini-cluster's reporters are found with.
    """
    root = pyflink_plugins_dir() if plugins_dir is None else plugins_dir
    jars = sorted(root.glob(PROMETHEUS_REPORTER_GLOB))
    if not jars:
        raise MissingDependency(
            f"infra: no {PROMETHEUS_REPORTER_GLOB} under {root}; reinstall apache-flink")
    return jars[-1]


def kafka_classpath(lib_dir: Path = KAFKA_LIB) -> str:
    """Java class path of the broker (``lib/kafka/*``), checked to hold the broker jar."""
    if not any(lib_dir.glob("kafka_2.13-*.jar")):
        raise MissingDependency(
            f"infra: the Kafka broker jars are not in {lib_dir}; {_HOW_TO_FETCH}")
    return str(lib_dir / "*")


def java_binary() -> str:
    """``$JAVA_HOME/bin/java`` when set, else ``java`` from PATH."""
    home = os.environ.get("JAVA_HOME")
    if home and (Path(home) / "bin" / "java").is_file():
        return str(Path(home) / "bin" / "java")
    found = shutil.which("java")
    if found is None:
        raise MissingDependency("infra: `java` (17 or newer) is not on PATH and JAVA_HOME is unset")
    return found


def redis_server_binary() -> str:
    found = shutil.which("redis-server")
    if found is None:
        raise MissingDependency(
            "infra: `redis-server` is not on PATH; run `bash infra/ensure-redis.sh` "
            "(or `make install`), or export REDIS_URL to use a running Redis")
    return found


def local_prerequisites(*, kafka: bool = True, redis: bool = True) -> list[str]:
    """What is missing to start Kafka and/or Redis as local processes (empty when all is there)."""
    checks = [kafka_classpath, java_binary] if kafka else []
    checks += [redis_server_binary] if redis else []
    missing = []
    for check in checks:
        try:
            check()
        except MissingDependency as exc:
            missing.append(str(exc))
    return missing

"""The deployment files for real clusters, checked for what can be checked without Docker or
Kubernetes: the compose file's cluster topology (3 Kafka nodes in one quorum, replication 3 and
min ISR 2, a Redis Cluster of 3 masters + 3 replicas, 2 TaskManagers of one slot), the
FlinkDeployment's versions and entry point, both files' settings against :mod:`recs.settings` and
their job arguments against ``recs job``, and the image's entry point script run for real.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from infra.paths import pyflink_home, pyflink_plugins_dir
from infra.topics import engine_topics
from recs.settings import Settings, Topics
from stream import submit
from stream.job import JobOptions

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "infra" / "deploy"
IMAGE_PYTHON = "/opt/pyenv/bin/python"  # the Dockerfile's venv


def _load(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def _locked(package: str) -> str:
    match = re.search(rf"^{re.escape(package)}==(\S+)", (ROOT / "requirements.lock").read_text(),
                      re.MULTILINE)
    assert match, f"{package} is not in requirements.lock"
    return match.group(1)


def _pom_property(name: str) -> str:
    match = re.search(rf"<{name}>([^<]+)</{name}>", (ROOT / "infra" / "pom.xml").read_text())
    assert match, f"infra/pom.xml has no <{name}>"
    return match.group(1)


def _submitted(rest_address: str, parallelism: int, checkpoint_dir: str) -> list[str]:
    """``flink run``'s argv as ``recs job --cluster`` builds it (stream/submit.py, what the
    cluster tests run), with the image's ``flink`` and interpreter in place of this machine's."""
    opts = JobOptions(parallelism=parallelism, checkpoint_dir=Path(checkpoint_dir))
    argv = submit.flink_run_argv(rest_address, opts)
    assert argv[:2] == ["bash", str(pyflink_home() / "bin" / "flink")], argv[:2]
    return ["flink", *(IMAGE_PYTHON if a == sys.executable else a for a in argv[2:])]


def _known_env(env: dict[str, str]) -> None:
    unknown = set(env) - set(Settings().to_env()) - {"FLINK_PROPERTIES"}
    assert not unknown, f"settings no process reads: {sorted(unknown)}"


# --- the compose file ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    (doc,) = _load(ROOT / "infra" / "docker-compose.yml")
    return doc


def _services(compose: dict[str, Any], prefix: str) -> dict[str, dict[str, Any]]:
    return {name: svc for name, svc in compose["services"].items()
            if re.fullmatch(rf"{prefix}-\d+", name)}


def test_compose_kafka_is_one_three_node_quorum(compose: dict[str, Any]) -> None:
    brokers = _services(compose, "kafka")
    assert len(brokers) == 3
    voters = set()
    for name, svc in brokers.items():
        env = svc["environment"]
        assert env["KAFKA_NODE_ID"] == name.split("-")[1], name
        assert env["KAFKA_ADVERTISED_LISTENERS"] == f"INTERNAL://{name}:29092"
        assert env["KAFKA_DEFAULT_REPLICATION_FACTOR"] == "3"
        assert env["KAFKA_MIN_INSYNC_REPLICAS"] == "2"
        assert env["KAFKA_UNCLEAN_LEADER_ELECTION_ENABLE"] == "false"
        assert svc["image"] == f"apache/kafka:{_pom_property('kafka.version')}"
        voters.add(env["KAFKA_CONTROLLER_QUORUM_VOTERS"])
    assert voters == {",".join(f"{n.split('-')[1]}@{n}:9093" for n in sorted(brokers))}
    bootstrap = compose["x-recs-env"]["KAFKA_BOOTSTRAP"].split(",")
    assert sorted(bootstrap) == sorted(f"{n}:29092" for n in brokers)


def test_compose_topics_match_the_engines_with_replication(compose: dict[str, Any]) -> None:
    script = compose["services"]["kafka-topics"]["command"][0]
    assert "--replication-factor 3" in script and "min.insync.replicas=2" in script
    created = dict(re.findall(r"--topic (\S+) --partitions (\d+)", script))
    parts = int(compose["x-recs-env"]["RECS_PARTITIONS"])
    expected = engine_topics(Topics(), parts)
    assert created == {spec.name: str(spec.partitions) for spec in expected}
    for spec in expected:
        line = next(ln for ln in script.splitlines() if f"--topic {spec.name} " in ln)
        for key, value in spec.configs.items():
            assert f"--config {key}={value}" in line, line


def test_compose_redis_is_three_masters_with_a_replica_each(compose: dict[str, Any]) -> None:
    nodes = _services(compose, "redis")
    assert len(nodes) == 6
    for name, svc in nodes.items():
        cmd = svc["command"]
        assert cmd[cmd.index("--cluster-enabled") + 1] == "yes", name
    create = compose["services"]["redis-cluster"]["command"][0]
    assert "--cluster-replicas 1" in create
    listed = re.search(r"for n in ([^;]+);", create)
    assert listed and sorted(listed.group(1).split()) == sorted(nodes)
    url = compose["x-recs-env"]["REDIS_URL"]
    assert url.startswith("redis+cluster://")
    seeds = [s.split(":")[0] for s in url.removeprefix("redis+cluster://").split(",")]
    assert seeds and set(seeds) <= set(nodes)


def test_compose_flink_slots_match_the_jobs_parallelism(compose: dict[str, Any]) -> None:
    svc = compose["services"]
    tm = svc["taskmanager"]
    slots = yaml.safe_load(tm["environment"]["FLINK_PROPERTIES"])["taskmanager.numberOfTaskSlots"]
    assert slots == 1
    assert tm["deploy"]["replicas"] == 2
    parallelism = int(compose["x-recs-env"]["RECS_PARALLELISM"])
    assert parallelism == slots * tm["deploy"]["replicas"]
    argv = svc["job"]["command"]
    assert argv == _submitted("jobmanager:8081", parallelism, "/flink-data/checkpoints")
    ck = Path(argv[argv.index("--checkpoint-dir") + 1])
    mounts = [v.split(":")[1] for v in svc["job"]["volumes"]]
    assert any(ck.is_relative_to(m) for m in mounts), "checkpoints must go to the shared volume"
    assert svc["jobmanager"]["build"]["dockerfile"] == "infra/deploy/flink.Dockerfile"
    assert svc["jobmanager"]["image"] == f"recs-flink:{_locked('apache-flink')}"


def test_compose_settings_are_ones_the_engine_reads(compose: dict[str, Any]) -> None:
    for name, svc in compose["services"].items():
        env = svc.get("environment")
        if isinstance(env, dict) and not name.startswith(("kafka", "redis")):
            _known_env(env)


# --- the FlinkDeployment -----------------------------------------------------------------------

@pytest.fixture(scope="module")
def k8s() -> dict[str, dict[str, Any]]:
    return {doc["kind"]: doc for doc in _load(DEPLOY / "flinkdeployment.yaml")}


def test_flinkdeployment_versions_follow_the_lock(k8s: dict[str, dict[str, Any]]) -> None:
    spec = k8s["FlinkDeployment"]["spec"]
    assert k8s["FlinkDeployment"]["apiVersion"] == "flink.apache.org/v1beta1"
    flink = _locked("apache-flink")
    major, minor = flink.split(".")[:2]
    assert spec["flinkVersion"] == f"v{major}_{minor}"
    assert spec["image"] == f"recs-flink:{flink}"
    jar = spec["job"]["jarURI"].removeprefix("local:///opt/flink/")
    assert (pyflink_plugins_dir().parent / jar).is_file(), f"PyFlink ships no {jar}"
    assert spec["job"]["entryClass"] == "org.apache.flink.client.python.PythonDriver"


def test_flinkdeployment_runs_the_job_with_its_settings(k8s: dict[str, dict[str, Any]]) -> None:
    spec = k8s["FlinkDeployment"]["spec"]
    parallelism = spec["job"]["parallelism"]
    args = spec["job"]["args"]
    # PythonDriver takes flink run's Python options and the job's own arguments
    submitted = _submitted("unused:0", parallelism, "/flink-data/checkpoints")
    assert args == submitted[submitted.index("-pyexec"):]
    assert spec["flinkConfiguration"]["taskmanager.numberOfTaskSlots"] == "1"
    settings = k8s["ConfigMap"]["data"]
    _known_env(settings)
    assert int(settings["RECS_PARALLELISM"]) == parallelism
    assert settings["REDIS_URL"].startswith("redis+cluster://")
    assert len(settings["KAFKA_BOOTSTRAP"].split(",")) == 3
    (container,) = spec["podTemplate"]["spec"]["containers"]
    config_map = k8s["ConfigMap"]["metadata"]["name"]
    assert container["envFrom"] == [{"configMapRef": {"name": config_map}}]
    ck = Path(args[args.index("--checkpoint-dir") + 1])
    assert any(ck.is_relative_to(m["mountPath"]) for m in container["volumeMounts"]), \
        "checkpoints must go to a volume that outlives the pods"


# --- the image -----------------------------------------------------------------------------------

def test_dockerfile_copies_what_exists_and_installs_the_lock() -> None:
    text = (DEPLOY / "flink.Dockerfile").read_text()
    assert "--require-hashes -r /opt/recs/requirements.lock" in text
    for src in re.findall(r"^COPY (\S+) ", text, re.MULTILINE):
        assert (ROOT / src).exists(), f"the Dockerfile copies {src}, which does not exist"
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert ".venv" in ignored and "run" in ignored


@pytest.mark.parametrize("role", ["jobmanager", "taskmanager"])
def test_entrypoint_starts_the_role_in_the_foreground(tmp_path: Path, role: str) -> None:
    home = tmp_path / "flink"
    (home / "bin").mkdir(parents=True)
    (home / "conf").mkdir()
    (home / "conf" / "config.yaml").write_text("parallelism.default: 1\n")
    stub = home / "bin" / f"{role}.sh"
    stub.write_text('#!/usr/bin/env bash\necho "$0 $*"\n')
    stub.chmod(0o755)
    env = {**os.environ, "FLINK_HOME": str(home),
           "FLINK_PROPERTIES": "jobmanager.rpc.address: jobmanager"}
    out = subprocess.run(["bash", str(DEPLOY / "docker-entrypoint.sh"), role, "-Dx=1"], env=env,
                         capture_output=True, text=True, check=True).stdout
    assert out.strip() == f"{stub} start-foreground -Dx=1"
    conf = yaml.safe_load((home / "conf" / "config.yaml").read_text())
    assert conf == {"parallelism.default": 1, "jobmanager.rpc.address": "jobmanager"}

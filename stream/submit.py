"""The job on a Flink cluster, submitted the documented way: ``flink run`` against the
JobManager's REST address.

    recs job --cluster [--parallelism 2] [--bounded] [--restore latest|PATH]
    recs job --jobmanager HOST:PORT ...

``--cluster`` targets the standalone cluster ``recs infra up --cluster`` started for the run dir
(``infra/flink_cluster.py``); ``--jobmanager`` any cluster whose REST API answers there. Either
runs PyFlink's ``bin/flink run -m HOST:PORT -d -p N -pyexec PY -pyclientexec PY -pym stream.job
--remote ...`` with the settings (``recs.settings``) in its environment and prints the job id.

Where the settings go: the ``flink run`` client runs ``stream/job.py``, which reads them once
and bakes them into the job graph (the Kafka sources' bootstrap servers, topics and group ids,
the sinks, the Redis URL of the JVM writer, the stages' configuration, the checkpoint dir), so
the TaskManagers need none of the submitting shell's variables. What they need is this project
and its dependencies in their Python environment: ``-pyexec`` names the interpreter, and the
TaskManagers' ``PYTHONPATH`` holds the project (``infra.flink_cluster.home_env``). The project's
JVM stages travel with the job (``pipeline.jars``); ``flink-python`` and the Kafka connector are
on the cluster's class path.
"""

from __future__ import annotations

import logging
import re
import subprocess
import sys
from pathlib import Path
from typing import Final

from infra.flink_cluster import FlinkCluster, home_env, write_home
from infra.paths import pyflink_home
from recs.settings import Settings
from stream.job import JobOptions

log = logging.getLogger(__name__)

JOB_ID: Final = re.compile(r"JobID ([0-9a-f]{32})")
SUBMIT_TIMEOUT_S: Final = 300.0


def job_args(opts: JobOptions) -> list[str]:
    """``stream/job.py``'s own arguments; ``--remote`` comes first, so ``flink run`` stops
    parsing its options there (its ``--parallelism`` would otherwise take ours)."""
    args = ["--remote", "--parallelism", str(opts.parallelism), "--group-id", opts.group_id]
    if opts.checkpoint_dir is None:
        args.append("--no-checkpoints")
    else:
        args += ["--checkpoint-dir", str(opts.checkpoint_dir.resolve())]
    if opts.bounded:
        args.append("--bounded")
    return args


def flink_run_argv(rest_address: str, opts: JobOptions) -> list[str]:
    """``flink run``, detached, with the Python environment of the TaskManagers stated; a restore
    goes through ``-s`` (a retained checkpoint or a savepoint)."""
    python = sys.executable
    argv = ["bash", str(pyflink_home() / "bin" / "flink"), "run", "-m", rest_address, "-d",
            "-p", str(opts.parallelism), "-pyexec", python, "-pyclientexec", python]
    if opts.restore_from is not None:
        argv += ["-s", str(opts.restore_from.resolve())]
    return [*argv, "-pym", "stream.job", *job_args(opts)]


def submit(settings: Settings, rest_address: str, opts: JobOptions, *, home: Path,
           timeout_s: float = SUBMIT_TIMEOUT_S) -> str:
    """Run ``flink run`` with ``home``'s conf and lib (:func:`infra.flink_cluster.write_home`);
    returns the job id. The client's output goes to ``home/logs/client/submit.log``."""
    log_dir = home / "logs" / "client"
    log_dir.mkdir(parents=True, exist_ok=True)
    env = {**home_env(home, log_dir), **settings.to_env()}
    out = subprocess.run(flink_run_argv(rest_address, opts), env=env, capture_output=True,
                         text=True, timeout=timeout_s, check=False)
    text = out.stdout + out.stderr
    with (log_dir / "submit.log").open("a") as f:
        f.write(text)
    found = JOB_ID.search(text)
    if out.returncode != 0 or found is None:
        tail = "\n".join(text.splitlines()[-25:])
        raise RuntimeError(f"stream.submit: flink run against {rest_address} failed "
                           f"(exit {out.returncode}):\n{tail}")
    log.info("job submitted job_id=%s jobmanager=%s parallelism=%s", found.group(1),
             rest_address, opts.parallelism)
    return found.group(1)


def target(settings: Settings, jobmanager: str | None) -> tuple[str, Path]:
    """The REST address and the Flink home to submit with: the run dir's cluster (``recs infra
    up --cluster``), or ``jobmanager`` (``HOST:PORT``) with a client home written for it."""
    if jobmanager is None:
        cluster = FlinkCluster(settings.run_dir)
        if not cluster.adopt():
            raise RuntimeError(f"stream.submit: no Flink cluster runs for the run dir "
                               f"{settings.run_dir}; start one with `recs infra up --cluster` "
                               "or name a JobManager with --jobmanager HOST:PORT")
        return cluster.rest_address, cluster.dir
    host, sep, port = jobmanager.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ValueError(f"stream.submit: --jobmanager must be HOST:PORT (the REST address), "
                         f"got {jobmanager!r}")
    home = Path(settings.run_dir).resolve() / "flink-client"
    write_home(home, {"rest.address": host, "rest.port": port})
    return jobmanager, home

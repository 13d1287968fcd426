"""The cluster tooling's pure parts: the ``flink run`` command line the job is submitted with,
bad ``--jobmanager`` input, and the lost/double-counted tally of ``make bench-cluster``."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from recs.settings import Settings
from schemas.events import Interaction, ItemUpsert
from state import keys
from state.records import Update
from state.store import MemoryStore
from stream.job import JobOptions
from stream.parity import count_differences
from stream.reference import ReferenceRunner
from stream.submit import flink_run_argv, job_args, target


def test_flink_run_states_the_python_environment_and_stops_parsing_at_the_job_args() -> None:
    opts = JobOptions(parallelism=2, checkpoint_dir=Path("ck"), bounded=True, remote=True,
                      restore_from=Path("ck/job/chk-7"))
    argv = flink_run_argv("127.0.0.1:8081", opts)
    flink = argv[:argv.index("-pym")]
    assert flink[1].endswith("pyflink/bin/flink") and flink[2] == "run"
    assert flink[flink.index("-m") + 1] == "127.0.0.1:8081" and "-d" in flink
    assert flink[flink.index("-p") + 1] == "2"
    assert flink[flink.index("-pyexec") + 1] == sys.executable
    assert flink[flink.index("-pyclientexec") + 1] == sys.executable
    assert flink[flink.index("-s") + 1] == str(Path("ck/job/chk-7").resolve())
    program = argv[argv.index("-pym"):]
    assert program[:2] == ["-pym", "stream.job"]
    # the job's own options start with one flink run does not know, so --parallelism is ours
    assert program[2:] == job_args(opts) and job_args(opts)[0] == "--remote"
    assert "--bounded" in program and str(Path("ck").resolve()) in program
    assert "--restore" not in program  # a restore goes through flink run's -s


def test_no_checkpoints_is_passed_on() -> None:
    assert "--no-checkpoints" in job_args(JobOptions(remote=True))


@pytest.mark.parametrize("bad", ["jobmanager", ":8081", "jobmanager:http", "host:"])
def test_a_bad_jobmanager_address_names_the_option_and_the_value(bad: str,
                                                                   tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="--jobmanager") as err:
        target(Settings(run_dir=tmp_path), bad)
    assert repr(bad) in str(err.value)


def test_no_local_cluster_says_how_to_start_one(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="recs infra up --cluster"):
        target(Settings(run_dir=tmp_path), None)


def test_lost_and_double_counted_events_are_tallied_per_item_and_type() -> None:
    ref = ReferenceRunner()
    ref.run([ItemUpsert("a", 1, title="A"), ItemUpsert("b", 1, title="B"),
             *[Interaction(f"e{n}", "view" if n % 3 else "click", "u1", "s1", 1_000 + n,
                           item_id="a" if n % 2 else "b") for n in range(12)]])
    same = MemoryStore()
    same.apply(Update(k, env.version, env.as_of, env.data)
               for k in ref.store.keys(keys.PREFIX) if (env := ref.store.get(k)) is not None)
    assert count_differences(ref, same) == count_differences(ref, ref.store)
    assert count_differences(ref, same).lost == 0 and count_differences(ref, same).double == 0

    stats_a, stats_b = keys.itemstats_key("a"), keys.itemstats_key("b")
    a, b = same.get(stats_a), same.get(stats_b)
    assert a is not None and b is not None
    views_a, clicks_b = a.data["counts"]["view"], b.data["counts"]["click"]
    short = {**a.data, "counts": {**a.data["counts"], "view": views_a - 2}}
    extra = {**b.data, "counts": {**b.data["counts"], "click": clicks_b + 3}}
    same.apply([Update(stats_a, a.version + 1, a.as_of, short),
                Update(stats_b, b.version + 1, b.as_of, extra)])
    got = count_differences(ref, same)
    assert (got.lost, got.double) == (2, 3)
    same.apply([Update(stats_a, a.version + 2, a.as_of, None)])  # an item missing entirely
    assert count_differences(ref, same).lost == sum(a.data["counts"].values())

"""The three-broker KRaft Kafka (infra/kafka_cluster.py) and the engine surviving the loss of one.

- topology: three brokers, each its own JVM, data dir and ports, registered in one quorum; the
  engine's topics replicated three times with ``min.insync.replicas`` 2 and no unclean leader
  election; another process adopts the running nodes (what ``recs infra down`` does);
- broker loss: the broker that leads most partitions of the events topic is SIGKILLed while the
  generated log is being published and the job (local mini-cluster, parallelism 2) reads it,
  and restarted later; the final Redis state equals the reference runner's: nothing lost,
  nothing counted twice.
"""

from __future__ import annotations

from collections import Counter

import pytest

from infra.kafka_cluster import KafkaCluster
from infra.topics import admin_client, broker_count, default_topics, partition_states, topic_configs
from recs.settings import Settings

pytestmark = [pytest.mark.integration, pytest.mark.cluster]


def test_three_brokers_in_one_quorum_and_the_engine_topics_replicated(
        kafka_cluster_whole: KafkaCluster) -> None:
    cluster = kafka_cluster_whole
    assert len(cluster.brokers) == 3
    assert len(cluster.bootstrap.split(",")) == 3
    with admin_client(cluster.bootstrap) as admin:
        assert broker_count(admin) == 3
    assert len({b.pid for b in cluster.brokers}) == 3
    assert len({b.dir / "data" for b in cluster.brokers}) == 3
    voters = {b.config_path.read_text().split("controller.quorum.voters=")[1].split()[0]
              for b in cluster.brokers}
    assert len(voters) == 1 and voters.pop().count("@") == 3  # one quorum of three voters

    for spec in default_topics(Settings()):
        states = partition_states(cluster.bootstrap, spec.name)
        assert len(states) == spec.partitions, spec.name
        for p in states:
            assert sorted(p.replicas) == [1, 2, 3] and sorted(p.isr) == [1, 2, 3], (spec.name, p)
        configs = topic_configs(cluster.bootstrap, spec.name)
        assert configs["min.insync.replicas"] == "2", (spec.name, configs)
        assert configs["unclean.leader.election.enable"] == "false", (spec.name, configs)
    # leadership is spread: no broker leads every partition of the events topic
    leaders = Counter(p.leader for p in partition_states(cluster.bootstrap, "interactions"))
    assert len(leaders) > 1, leaders

    # another process (recs infra down) finds the same nodes from the run dir
    other = KafkaCluster(cluster.dir.parent)
    assert other.adopt()
    assert other.pids == cluster.pids and other.bootstrap == cluster.bootstrap

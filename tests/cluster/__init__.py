"""Tests against the cluster topology: a Flink standalone cluster, a 3-broker Kafka, a Redis
Cluster."""

"""A/B experiment analysis: ``recs ab report``.

``stats`` (pure maths), ``attribution`` (pure fold of events into per-variant tallies),
``experiments`` (the experiments TOML), ``summary`` (tallies + experiments -> rows, table, JSON)
and ``report`` (the Kafka reader and the CLI).
"""

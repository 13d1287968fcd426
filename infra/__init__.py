"""Infrastructure the project starts itself: a Kafka broker (KRaft) and Redis as local processes.

See ``infra/README.md``. Entry points: :class:`infra.services.Services` (context manager),
``recs infra up|down|status`` (:func:`infra.services.main`) and
:func:`infra.paths.flink_connector_jar`.
Importing this package starts nothing.
"""

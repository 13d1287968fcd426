# The engine's Flink image: Debian bookworm (Python 3.11, Java 17), the project's locked Python
# environment, and the Flink that PyFlink ships as FLINK_HOME, so a pod runs the same Flink, the
# same Python and the same jars as `recs infra up --cluster` runs on one machine.
# NOT built by this project's tests or CI (no Docker engine there); tests/test_deploy_files.py
# checks what can be checked without one (versions, paths, the entry point's arguments).
#
#   make install                      # builds stream/jvm/target/recs-stream-jvm.jar, fetches jars
#   docker build -f infra/deploy/flink.Dockerfile -t recs-flink:2.2.1 .
FROM debian:bookworm-slim

RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv openjdk-17-jre-headless \
       ca-certificates procps \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --uid 9999 --create-home flink

COPY requirements.lock /opt/recs/requirements.lock
RUN python3 -m venv /opt/pyenv \
    && /opt/pyenv/bin/pip install --no-cache-dir --require-hashes -r /opt/recs/requirements.lock \
    && ln -s "$(/opt/pyenv/bin/python -c 'import pyflink, os; print(os.path.dirname(pyflink.__file__))')" \
       /opt/flink

# The project's code and the jars the job puts on pipeline.jars (built/fetched by `make install`).
COPY schemas /opt/recs/schemas
COPY operators /opt/recs/operators
COPY state /opt/recs/state
COPY stream /opt/recs/stream
COPY recs /opt/recs/recs
COPY infra /opt/recs/infra
COPY serving /opt/recs/serving
COPY infra/deploy/docker-entrypoint.sh /docker-entrypoint.sh

# thread mode embeds CPython in the TaskManager's JVM: it finds the project and the locked
# packages through PYTHONPATH, not through the venv (as infra/flink_cluster.py does locally)
ENV FLINK_HOME=/opt/flink \
    PATH=/opt/pyenv/bin:/opt/flink/bin:$PATH \
    PYTHONPATH=/opt/recs:/opt/pyenv/lib/python3.11/site-packages \
    RECS_RUN_DIR=/tmp/recs
RUN mkdir -p /opt/flink/log /tmp/recs /flink-data \
    && chown -R flink /opt/flink/log /opt/flink/conf/ /tmp/recs /flink-data \
    && chmod 0755 /docker-entrypoint.sh
USER flink
WORKDIR /opt/recs
ENTRYPOINT ["/docker-entrypoint.sh"]
CMD ["help"]

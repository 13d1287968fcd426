"""``recs demo`` (``make demo``): the whole engine on this machine, end to end.

Starts a real Kafka broker (KRaft) and Redis, the PyFlink job, the update loader, the HTTP
server and the blend learner (every interest event: ``RECS_BLEND_SAMPLE`` 1 unless set);
publishes a synthetic storefront (catalogue + clickstream at ``DEMO_RATE`` events/s, with
a few malformed events that must land in the dead-letter topic); and plays one shopper,
``demo-shopper``, who clicks a product every few seconds while the demo measures how long the
"because you viewed" answer takes to change. Every 5 s it prints a status line.

``DEMO_SECONDS=N`` stops N seconds after the storefront starts publishing (start-up not
counted); otherwise it runs until Ctrl-C. Either way it stops
everything it started and prints, as its last line, one JSON summary.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import random
import signal
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from typing import Any

import orjson

from operators.learned_blend import is_warm
from recs.bench_stream import Prober, percentile
from recs.settings import Settings
from schemas.events import Interaction, ItemUpsert
from serving.auth import write_keys
from serving.models import decode_blend
from state import keys
from state.records import decode_envelope
from state.redis_connect import SyncClient, mget, sync_client
from state.redis_store import RedisStore
from stream import TOPOLOGY_VERSION
from stream.job import LOADER_WRITER

SHOPPER = "demo-shopper"
MALFORMED = (b'{"event_id": "bad-1", "type": "view"', b'{"event_id":"bad-2","type":"like",'
             b'"user_id":"u","session_id":"s","item_id":"i1","ts":1700000000000}')


@dataclasses.dataclass
class Counters:
    produced: int = 0
    processed: int = 0  # highest committed-offset total seen (commits happen on checkpoints)
    # the totals when this run began: the demo's topics and checkpoints outlive a run (the next
    # `make demo` resumes), so this run's figures are the totals minus these
    processed_before: int = 0
    dlq_before: int = 0
    malformed: int = 0
    publishing_since: float | None = None  # monotonic time the clickstream started
    http_ok: int = 0
    http_failed: int = 0
    http_errors: list[str] = dataclasses.field(default_factory=list)  # the first few failures
    clicks: list[float] = dataclasses.field(default_factory=list)  # ms until recs changed
    launches: list[float] = dataclasses.field(default_factory=list)  # ms until retrievable
    lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)


DEMO_RANKER_WINDOW_MS = 15_000
START_TIMEOUT_S = 600.0  # the clickstream waits for the job; a job that never writes is an error


def http_get(base: str, path: str, counters: Counters,
             auth: Mapping[str, str]) -> dict[str, Any] | None:
    try:
        with urllib.request.urlopen(urllib.request.Request(base + path, headers=dict(auth)),
                                    timeout=2) as resp:
            body = orjson.loads(resp.read())
        with counters.lock:
            counters.http_ok += 1
        return body  # type: ignore[no-any-return]
    except (urllib.error.URLError, OSError, ValueError) as exc:
        with counters.lock:
            counters.http_failed += 1
            if len(counters.http_errors) < 5:
                counters.http_errors.append(f"{path}: {exc}")
        return None


def _produce(settings: Settings, stop: threading.Event, rate: float, counters: Counters,
             prober: Prober) -> None:
    from kafka import KafkaProducer

    from recs.synthetic import Storefront

    shop = Storefront(seed=3, n_items=2_000, n_users=20_000)
    producer = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap, linger_ms=5)
    catalogue = shop.catalogue(int(time.time() * 1000) - 60_000)
    for item in catalogue:
        producer.send(settings.topics.items, key=item.item_id.encode(), value=item.to_json())
    producer.flush()
    # the clickstream starts once the job is up (the catalogue is visible in Redis), so the
    # freshness figures measure the running pipeline, not the JVM's start-up
    client = sync_client(settings.redis_url)
    while not stop.is_set() and not client.exists(keys.item_key(catalogue[-1].item_id)):
        time.sleep(0.2)
    print("recs demo: the job is running; publishing the clickstream at "
          f"{rate:.0f} events/s", flush=True)
    events: Iterator[Interaction] = shop.events(10**9, start_ts=int(time.time() * 1000))
    counters.publishing_since = time.monotonic()
    started = time.perf_counter()
    sent = 0
    while not stop.is_set():
        due = int((time.perf_counter() - started) * rate)
        while sent < due:
            now = time.time()
            ev = dataclasses.replace(next(events), ts=int(now * 1000))
            producer.send(settings.topics.interactions, key=ev.user_id.encode(),
                          value=ev.to_json())
            sent += 1
            if sent % 25 == 0 and ev.item_id is not None and ev.type != "impression":
                prober.add(ev.user_id, ev.ts, now)
            if sent % 5_000 == 100:
                producer.send(settings.topics.interactions, key=b"bad",
                              value=MALFORMED[(sent // 5_000) % len(MALFORMED)])
                counters.malformed += 1
        counters.produced = sent
        time.sleep(0.005)
    producer.flush()
    producer.close()


def _shopper(settings: Settings, base: str, stop: threading.Event, counters: Counters,
             auth: Mapping[str, str]) -> None:
    """Click an item, wait for the session recommendations to change, repeat."""
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap, linger_ms=0)
    rng = random.Random(5)
    path = f"/v1/users/{SHOPPER}/session-recommendations?k=5"
    n = 0
    while not stop.wait(2.0):
        trending = http_get(base, "/v1/trending?k=50", counters, auth)
        pool = [i["item_id"] for i in (trending or {}).get("items", [])]
        if not pool:
            continue
        before = http_get(base, path, counters, auth) or {}
        item = rng.choice(pool)
        n += 1
        now = time.time()
        ev = Interaction(f"demo-click-{n}", "click", SHOPPER, "demo-session", int(now * 1000),
                         item_id=item, context={"device": "web", "page": "demo"})
        producer.send(settings.topics.interactions, key=SHOPPER.encode(), value=ev.to_json())
        producer.flush()
        deadline = now + 5.0
        while time.time() < deadline and not stop.is_set():
            after = http_get(base, path, counters, auth) or {}
            if after.get("items") != before.get("items") and after.get("source") == "session":
                waited = (time.time() - now) * 1000
                counters.clicks.append(waited)
                top = ", ".join(i["item_id"] for i in after["items"][:3])
                print(f"  click {item} -> 'because you viewed' changed in {waited:.0f} ms: {top}",
                      flush=True)
                break
            time.sleep(0.02)
    producer.close()


def _launcher(settings: Settings, base: str, stop: threading.Event, counters: Counters,
              auth: Mapping[str, str]) -> None:
    """Every 15 s, launch a brand-new item like one that is trending (same category and brand,
    a similar title) and time how long until the server answers its similar items from the
    learned vectors: the item was placed by its content and is retrievable."""
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap, linger_ms=0)
    n = 0
    while not stop.wait(15.0):
        top = (http_get(base, "/v1/trending?k=5", counters, auth) or {}).get("items") or []
        if not top:
            continue
        like = top[n % len(top)]
        n += 1
        item_id = f"demo-new-{n}"
        now = time.time()
        upsert = ItemUpsert(item_id, int(now * 1000), title=f"{like.get('title') or 'New'} II",
                            category=like.get("category"), brand=like.get("brand"),
                            price=like.get("price"), stock=10)
        producer.send(settings.topics.items, key=item_id.encode(), value=upsert.to_json())
        producer.flush()
        while time.time() < now + 90 and not stop.is_set():
            with contextlib.suppress(urllib.error.URLError, OSError, ValueError), \
                    urllib.request.urlopen(urllib.request.Request(
                        f"{base}/v1/items/{item_id}/similar?k=5", headers=dict(auth)),
                        timeout=2) as resp:
                items = orjson.loads(resp.read()).get("items") or []
                if any("vector" in str(i.get("source")) for i in items):
                    waited = (time.time() - now) * 1000
                    counters.launches.append(waited)
                    print(f"  new item {item_id} ({upsert.category}) retrievable by its learned "
                          f"vector after {waited:.0f} ms", flush=True)
                    break
            time.sleep(0.2)
    producer.close()


def _processed(settings: Settings) -> int:
    """Events the job has consumed, from its committed offsets (committed on checkpoints),
    since the demo's topics were created."""
    from kafka import KafkaAdminClient

    with contextlib.closing(KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)) as adm:
        group = "recs-stream-interactions"
        offsets = adm.list_group_offsets(group).get(group, {})
    return sum(meta.offset for tp, meta in offsets.items()
               if tp.topic == settings.topics.interactions and meta.offset >= 0)


def _processed_now(settings: Settings, counters: Counters) -> int:
    """Events consumed by the job during this run."""
    return _processed(settings) - counters.processed_before


def _dlq_count(settings: Settings) -> int:
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=settings.kafka_bootstrap)
    parts = [TopicPartition(settings.topics.dlq, p)
             for p in consumer.partitions_for_topic(settings.topics.dlq) or ()]
    total = sum(consumer.end_offsets(parts).values()) - sum(
        consumer.beginning_offsets(parts).values())
    consumer.close()
    return int(total)


def _users_with_session_recs(client: SyncClient) -> tuple[int, int]:
    """(users with a session, users whose session yields candidates right now)."""
    from operators.candidates import recent_items, session_candidates

    store = RedisStore(client)
    names = [k.decode() for k in client.scan_iter(match=keys.session_key("*"), count=1000)]
    with_recs = 0
    for start in range(0, len(names), 500):
        sessions = [env.data for env in store.get_many(names[start:start + 500]) if env]
        wanted = sorted({i for s in sessions for i in recent_items(s)})
        lists = dict(zip(wanted, store.get_many([keys.similar_key(i) for i in wanted]),
                         strict=True))
        for s in sessions:
            nb = {i: env.data["items"] for i in recent_items(s) if (env := lists.get(i))}
            if session_candidates(s, nb, k=1):
                with_recs += 1
    return len(names), with_recs


def _wait_listening(base: str, server: Any, timeout_s: float) -> None:
    """Wait until the server answers ``/healthz`` (its start-up imports take seconds on a busy
    machine), so the demo's own clients never meet a closed port."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(urllib.error.URLError, OSError), \
                urllib.request.urlopen(f"{base}/healthz", timeout=2):
            return
        if not server.alive():
            raise RuntimeError(f"server exited:\n{server.tail()}")
        time.sleep(0.2)
    raise RuntimeError(f"the server did not answer {base}/healthz within {timeout_s:.0f} s")


def _open_browser(url: str) -> None:
    """Open the storefront where a desktop is available (``DISPLAY`` or ``BROWSER`` set);
    on a headless machine the URL printed above is the way in."""
    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
            or os.environ.get("BROWSER")):
        return
    import webbrowser

    with contextlib.suppress(webbrowser.Error):
        webbrowser.open_new_tab(url)


def main(argv: list[str]) -> int:
    from infra.procs import free_port, port_is_free
    from infra.services import Services
    from recs import engine

    seconds = float(os.environ.get("DEMO_SECONDS", "0")) or None
    rate = float(os.environ.get("DEMO_RATE", "300"))
    base_settings = Settings.from_env()
    run_dir = base_settings.run_dir / "demo"
    run_dir.mkdir(parents=True, exist_ok=True)
    keys_path = run_dir / "keys.toml"
    made = write_keys(keys_path)  # new keys every run: nothing secret is fixed or committed
    def port_for(wanted: int) -> int:
        return wanted if port_is_free(wanted) else free_port()

    port = port_for(base_settings.http_port)
    metric_ports = {"monitor_port": port_for(base_settings.monitor_port),
                    "loader_metrics_port": port_for(base_settings.loader_metrics_port),
                    "blend_metrics_port": port_for(base_settings.blend_metrics_port),
                    "flink_metrics_port": port_for(base_settings.flink_metrics_port),
                    "flink_rest_port": port_for(base_settings.flink_rest_port)}
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    counters = Counters()
    started = time.monotonic()
    print(f"recs demo: starting Kafka, Redis, the Flink job, the loader, the server and the "
          f"blend learner "
          f"(logs under {run_dir}/logs)", flush=True)
    with contextlib.ExitStack() as owned:
        svc = owned.enter_context(Services(run_dir / "services", settings=base_settings))
        settings = dataclasses.replace(
            svc.settings, run_dir=run_dir, http_port=port,
            monitor_port=metric_ports["monitor_port"],
            loader_metrics_port=metric_ports["loader_metrics_port"],
            blend_metrics_port=metric_ports["blend_metrics_port"],
            flink_metrics_port=metric_ports["flink_metrics_port"],
            flink_rest_port=metric_ports["flink_rest_port"],
            # a short attribution window, so the ranker learns while the demo runs
            ranker_window_ms=base_settings.ranker_window_ms
            if "RECS_RANKER_WINDOW_MS" in os.environ else DEMO_RANKER_WINDOW_MS,
            # the blend learner learns from every interest event at the demo's rate
            blend_sample=base_settings.blend_sample
            if "RECS_BLEND_SAMPLE" in os.environ else 1.0,
            # keys made for this run; the server plays the storefront's backend for the page
            # (POST /demo/token); the private side answers this machine without a key
            keys_file=str(keys_path), demo_storefront=True, demo_public_key=made["public"],
            private_loopback=True)
        auth = {"Authorization": f"Bearer {made['server']}"}
        logs = run_dir / "logs"
        # each process is stopped on the way out, whatever happens after it started
        # checkpoints of another operator graph cannot be restored: one directory per version,
        # and per runtime (the JVM stages keep other state under the same uids)
        graph = f"v{TOPOLOGY_VERSION}" + ("" if settings.stream_runtime == "python"
                                          else f"-{settings.stream_runtime}")
        job = engine.start_job(settings, logs, restore="latest",
                               checkpoint_dir=run_dir / "checkpoints" / graph)
        owned.callback(job.stop)
        procs = [job]
        if settings.writer == LOADER_WRITER:  # else the job writes to Redis itself
            load = engine.start_loader(settings, logs)
            owned.callback(load.stop)
            procs.append(load)
        server = engine.start_server(settings, logs)
        owned.callback(server.stop)
        monitor = engine.start_monitor(settings, logs)
        owned.callback(monitor.stop)
        learner = engine.start_blend_learner(settings, logs)
        owned.callback(learner.stop)
        procs.append(learner)
        base = f"http://{settings.http_host}:{port}"
        client = sync_client(settings.redis_url)
        prober = Prober(client)
        threads = [threading.Thread(target=prober.run, daemon=True),
                   threading.Thread(target=_produce, args=(settings, stop, rate, counters,
                                                           prober), daemon=True),
                   threading.Thread(target=_shopper,
                                    args=(settings, base, stop, counters, auth), daemon=True),
                   threading.Thread(target=_launcher,
                                    args=(settings, base, stop, counters, auth), daemon=True)]
        _wait_listening(base, server, timeout_s=120)
        print(f"recs demo: server at {base}; API keys made for this run in {keys_path}:\n"
              f"  server key (a storefront backend): {made['server']}\n"
              f"  public key (browsers, with a user token): {made['public']}\n"
              f"  try: curl -H 'Authorization: Bearer {made['server']}' "
              f"'{base}/v1/users/{SHOPPER}/session-recommendations?explain=true'\n"
              f"  a browser's call: TOKEN=$(recs keys token {keys_path} --user {SHOPPER} "
              f"--session demo-session); curl -H 'Authorization: Bearer {made['public']}' "
              f"-H \"X-Recs-Token: $TOKEN\" '{base}/v1/users/{SHOPPER}/recommendations'",
              flush=True)
        print(f"recs demo: open the storefront at {base}/storefront  (click products; the "
              f"'Because you viewed' rail follows)  API docs: {base}/docs", flush=True)
        print(f"recs demo: dashboards: {base}/dashboard (built in); `recs status` in another "
              f"terminal (RECS_MONITOR_PORT={settings.monitor_port} "
              f"RECS_LOADER_METRICS_PORT={settings.loader_metrics_port} "
              f"RECS_HTTP_PORT={port}); Prometheus targets: server {port}, monitor "
              f"{settings.monitor_port}, loader {settings.loader_metrics_port}, blend learner "
              f"{settings.blend_metrics_port}, Flink "
              f"{settings.flink_metrics_port} (config and Grafana dashboard in infra/prometheus, "
              f"infra/grafana); Flink's web UI http://127.0.0.1:{settings.flink_rest_port}",
              flush=True)
        counters.processed_before = _processed(settings)
        counters.dlq_before = _dlq_count(settings)
        _open_browser(f"{base}/storefront")
        for t in threads:
            t.start()
        # DEMO_SECONDS counts from when the clickstream starts (the producer waits for the job
        # to be up), not the start-up before it: a slow machine's JVM start-up once ate a whole
        # 40 s smoke run, and then the first 40 s after the threads started (nothing produced)
        latencies: list[float] = []
        try:
            while not stop.wait(5.0):
                latencies += prober.take()
                for proc in (*procs, server, monitor):
                    if not proc.alive():
                        raise RuntimeError(f"{proc.name} exited:\n{proc.tail()}")
                elapsed = time.monotonic() - started
                counters.processed = max(counters.processed, _processed_now(settings, counters))
                print(f"[{elapsed:5.0f}s] produced={counters.produced} "
                      f"processed={counters.processed} "
                      f"dlq={_dlq_count(settings) - counters.dlq_before} "
                      f"http_ok={counters.http_ok} "
                      f"freshness_p99_ms={percentile(latencies, 99):.0f}", flush=True)
                since = counters.publishing_since
                if seconds is not None and since is not None and \
                        time.monotonic() - since >= seconds:
                    break
                if since is None and time.monotonic() - started > START_TIMEOUT_S:
                    raise RuntimeError(
                        f"the job wrote nothing to Redis within {START_TIMEOUT_S:.0f} s of the "
                        f"demo's start:\n{job.tail()}")
        except KeyboardInterrupt:
            pass
        finally:
            stop.set()
            for t in threads[1:]:
                t.join(timeout=10)
            prober.stop.set()
        latencies += prober.take()
        # offsets are committed on checkpoints: give the job one interval to commit the tail
        deadline = time.monotonic() + 2 * settings.checkpoint_interval_ms / 1000 + 2
        while time.monotonic() < deadline and counters.processed < counters.produced:
            counters.processed = max(counters.processed, _processed_now(settings, counters))
            time.sleep(0.5)
        summary = _summary(settings, client, counters, latencies, time.monotonic() - started)
    sys.stdout.write(orjson.dumps(summary).decode() + "\n")
    return 0


def _summary(settings: Settings, client: SyncClient, counters: Counters,
             latencies: list[float], elapsed: float) -> dict[str, Any]:
    users, with_recs = _users_with_session_recs(client)
    return {
        "seconds": round(elapsed, 1),
        "events_produced": counters.produced,
        "malformed_produced": counters.malformed,
        "events_processed": max(counters.processed, _processed_now(settings, counters)),
        "dlq": _dlq_count(settings) - counters.dlq_before,
        "users_with_session": users,
        "users_with_session_recs": with_recs,
        "http_requests_ok": counters.http_ok,
        "http_requests_failed": counters.http_failed,
        "http_errors": counters.http_errors,
        "freshness_p50_ms": round(percentile(latencies, 50), 1) if latencies else None,
        "freshness_p99_ms": round(percentile(latencies, 99), 1) if latencies else None,
        "click_to_recs_p50_ms": round(percentile(counters.clicks, 50), 1)
        if counters.clicks else None,
        "clicks": len(counters.clicks),
        "new_items_launched_retrievable": len(counters.launches),
        "new_item_retrievable_max_ms": round(max(counters.launches), 1)
        if counters.launches else None,
        **_models(client),
    }


def _models(client: SyncClient) -> dict[str, Any]:
    """What the online models had published: events learnt, vectors, ranker examples, the
    learned blend's labelled events and whether it is served."""
    out: dict[str, Any] = {}
    raw_mf, raw_rk, raw_bl = mget(client, [keys.model_key(keys.MODEL_MF),
                                           keys.model_key(keys.MODEL_RANKER),
                                           keys.model_key(keys.MODEL_BLEND)])
    if raw_mf:
        mf = decode_envelope(raw_mf).data
        out.update(model_events_learned=mf["events"], model_items=mf["items"],
                   model_users=mf["users"], model_items_placed_by_content=mf["placed"])
    if raw_rk:
        stats = decode_envelope(raw_rk).data["stats"]
        out.update(ranker_examples=stats["examples"], ranker_auc=round(stats["auc"], 4),
                   ranker_log_loss=round(stats["log_loss"], 4), ranker_warm=stats["warm"])
    if raw_bl:
        _env, found = decode_blend(raw_bl)
        if found is not None:
            model, cfg = found
            out.update(blend_labelled=model.labelled, blend_warm=is_warm(model, cfg),
                       blend_prior_gain=round(model.prior_gain, 4),
                       blend_learned_gain=round(model.learned_gain, 4))
    return out



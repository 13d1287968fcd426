"""Browser end-to-end: the demo storefront and its widget in headless Chromium, against the whole
engine (real Kafka broker, the PyFlink job, the loader, real Redis, the granian server).

The test publishes a synthetic catalogue and some traffic, waits until trending and neighbour
lists are served, opens ``/storefront``, clicks a product card, and checks that the
"Because you viewed" rail turns into session recommendations for that product within
:data:`RAIL_CHANGE_S` seconds. A screenshot lands in ``test-artifacts/widget-e2e.png``.

The click takes the real path: ``RecsWidget.track`` -> ``POST /v1/events`` (the server publishes
to the interactions topic) -> the Flink job -> the loader -> Redis -> the widget's next poll. Every
event the widget posted is also checked against ``schemas/interaction.v1.json``.

The page holds no secret: it gets a user token from the demo's storefront backend
(``POST /demo/token``) and sends the public key with it on every call; the test checks that
every API request carried exactly that, that the events are the token's user and session, and
that the same page asking for another shopper is refused without any of that shopper's data.

Chromium is Debian's ``/usr/bin/chromium`` (``infra/ensure-chromium.sh`` installs it when it is
missing); Playwright only drives it and never downloads a browser. The test is skipped only when
Chromium cannot be installed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import orjson
import pytest

from infra.procs import free_port
from recs import engine
from recs.settings import Settings
from recs.synthetic import Storefront
from schemas.events import Interaction, ItemUpsert
from state.keys import session_key, similar_key
from state.redis_store import RedisStore
from tests import streamkit
from tests.serving.kit import creds, server_auth

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
SCREENSHOT = REPO / "test-artifacts" / "widget-e2e.png"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-proxy-server"]
INTERACTION_SCHEMA = json.loads((REPO / "schemas" / "interaction.v1.json").read_text())

N_ITEMS = 300
N_EVENTS = 6_000
GRID_MIN_ITEMS = 24       # the page asks for 48; the test wants a real grid, not a handful
ENGINE_START_S = 240.0    # JVM and Flink start-up on a 2-core machine, then the first emits
RAIL_CHANGE_S = 8.0       # click -> "Because you viewed" shows session recommendations
PAGE_TIMEOUT_MS = 30_000
MIN_NEIGHBOURS = 3
SESSION_RAIL = '[data-recs-widget="session"]'
HOMEPAGE_RAIL = '[data-recs-widget="homepage"]'

RAIL_IDS_JS = """sel => Array.from(document.querySelectorAll(sel + ' [data-item-id]'))
                          .map(li => [li.dataset.itemId, li.dataset.source])"""
RAIL_CHANGED_JS = """([sel, before]) => {
  const rail = document.querySelector(sel);
  const ids = Array.from(rail.querySelectorAll('[data-item-id]')).map(li => li.dataset.itemId);
  return rail.dataset.source === 'session' && ids.length > 0 && ids.join() !== before.join();
}"""


# ---- the browser --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def chromium() -> Path:
    """Debian's Chromium, installed by ``infra/ensure-chromium.sh`` when missing."""
    if not CHROMIUM.exists():
        proc = subprocess.run(["bash", str(REPO / "infra" / "ensure-chromium.sh")],
                              capture_output=True, text=True, timeout=900, check=False)
        if proc.returncode != 0 or not CHROMIUM.exists():
            why = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            pytest.skip(f"chromium cannot be installed on this machine: "
                        f"infra/ensure-chromium.sh exited {proc.returncode}: {why}")
    return CHROMIUM


# ---- the engine ---------------------------------------------------------------------------

@dataclasses.dataclass
class Engine:
    settings: Settings
    store: RedisStore
    procs: list[engine.EngineProcess]
    users: list[str]  # users of the published log (other shoppers, for the page to spy on)

    @property
    def base(self) -> str:
        return f"http://{self.settings.http_host}:{self.settings.http_port}"

    def check_alive(self) -> None:
        for proc in self.procs:
            if not proc.alive():
                pytest.fail(f"{proc.name} exited ({proc.popen.returncode}):\n{proc.tail()}")

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(urllib.request.Request(self.base + path,
                                                           headers=server_auth()),
                                    timeout=2) as resp:
            return orjson.loads(resp.read())


def synthetic_log(now_ms: int) -> streamkit.Log:
    """A seeded catalogue and traffic (launches and restocks included) whose last event is a
    second ago, so that trending is recent."""
    shop = Storefront(seed=11, n_items=N_ITEMS, n_users=400)
    stream = list(shop.stream(N_EVENTS))
    shift = now_ms - 1_000 - max(e.ts for e in stream)
    moved = [dataclasses.replace(e, ts=e.ts + shift) for e in stream]
    return streamkit.Log(
        shop.catalogue(now_ms - 600_000) + [e for e in moved if isinstance(e, ItemUpsert)],
        [e for e in moved if isinstance(e, Interaction)])


def wait_until_served(eng: Engine) -> list[str]:
    """Trending ids, once the grid's trending list and some neighbour lists are served."""
    deadline = time.monotonic() + ENGINE_START_S
    last: Any = None
    while time.monotonic() < deadline:
        eng.check_alive()
        with contextlib.suppress(urllib.error.URLError, OSError, ValueError):
            last = eng.get(f"/v1/trending?k={2 * GRID_MIN_ITEMS}")
            ids = [i["item_id"] for i in last.get("items", ())]
            if len(ids) >= GRID_MIN_ITEMS and any(
                    eng.store.get(similar_key(i)) is not None for i in ids):
                return ids
        time.sleep(1.0)
    pytest.fail(f"the engine served no trending grid within {ENGINE_START_S:.0f} s; "
                f"last answer {last!r}\n" + "\n".join(p.tail(15) for p in eng.procs))


@pytest.fixture
def running(live_settings: Settings, redis_store: RedisStore, tmp_path: Path) -> Iterator[Engine]:
    # the test's keys; the server plays the storefront backend that signs the shopper's token
    settings = dataclasses.replace(live_settings, http_port=free_port(),
                                   keys_file=creds().keys_file, demo_storefront=True,
                                   demo_public_key=creds().public)
    log = synthetic_log(time.time_ns() // 1_000_000)
    streamkit.publish(settings, log)
    logs = tmp_path / "logs"
    with contextlib.ExitStack() as owned:
        procs: list[engine.EngineProcess] = []
        for start in (lambda: engine.start_job(settings, logs),
                      lambda: engine.start_loader(settings, logs),
                      lambda: engine.start_server(settings, logs)):
            proc = start()
            owned.callback(proc.stop)  # each is stopped by its pid, whatever happens next
            procs.append(proc)
        eng = Engine(settings, redis_store, procs, list(dict.fromkeys(
            e.user_id for e in log.events)))
        wait_until_served(eng)
        yield eng


# ---- the test -----------------------------------------------------------------------------

SPY_JS = """async ([path, other, session]) => {
  const read = await RecsWidget.api(path);
  const write = await RecsWidget.api('/v1/events', {method: 'POST',
    headers: {'content-type': 'application/json'},
    body: JSON.stringify([{event_id: 'forged-1', type: 'purchase', user_id: other,
                           session_id: session, item_id: 'x', ts: Date.now()}])});
  return {read: [read.status, await read.text()], write: [write.status, await write.text()]};
}"""


def pick_product(store: RedisStore, grid: list[str]) -> tuple[str, list[str]]:
    """The first product of the grid with at least :data:`MIN_NEIGHBOURS` neighbours."""
    for item in grid:
        env = store.get(similar_key(item))
        neighbours = [i for i, _ in env.data.get("items", ()) if i != item] if env else []
        if len(neighbours) >= MIN_NEIGHBOURS:
            return item, neighbours
    pytest.fail(f"no product of the grid has {MIN_NEIGHBOURS} neighbours yet: {grid}")


def test_clicking_a_product_refreshes_because_you_viewed(
        running: Engine, chromium: Path, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    posted: list[Any] = []
    api_calls: list[tuple[str, dict[str, str]]] = []
    page_errors: list[str] = []
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"), executable_path=str(chromium), headless=True,
            args=CHROMIUM_ARGS, viewport={"width": 1280, "height": 900})
        try:
            page = browser.new_page()
            page.set_default_timeout(PAGE_TIMEOUT_MS)
            page.on("pageerror", lambda exc: page_errors.append(str(exc)))
            page.on("request", lambda r: posted.append(orjson.loads(r.post_data_buffer or b""))
                    if r.method == "POST" and r.url.endswith("/v1/events") else None)
            page.on("request", lambda r: api_calls.append((r.url, r.headers))
                    if "/v1/" in r.url else None)

            page.goto(running.base + "/storefront")
            page.wait_for_selector(f"#grid .card >> nth={GRID_MIN_ITEMS - 1}")
            page.wait_for_selector(f'{SESSION_RAIL}[data-state="ready"] [data-item-id]')
            page.wait_for_selector(f'{HOMEPAGE_RAIL}[data-state="ready"] [data-item-id]')
            before = [i for i, _ in page.evaluate(RAIL_IDS_JS, SESSION_RAIL)]
            assert page.get_attribute(SESSION_RAIL, "data-source") == "trending"  # new shopper
            # the rails come from one page request: a new shopper's rails share no item
            homepage_ids = [i for i, _ in page.evaluate(RAIL_IDS_JS, HOMEPAGE_RAIL)]
            assert before and homepage_ids and not set(before) & set(homepage_ids)
            user = page.evaluate("RecsWidget.user()")
            session_id = page.evaluate("RecsWidget.session()")
            grid = page.eval_on_selector_all("#grid .card", "els => els.map(e => e.dataset.itemId)")
            target, neighbours = pick_product(running.store, grid)

            clicked = time.monotonic()
            page.click(f'#grid .card[data-item-id="{target}"] button')
            try:
                page.wait_for_function(RAIL_CHANGED_JS, arg=[SESSION_RAIL, before],
                                       timeout=RAIL_CHANGE_S * 1000)
            finally:
                page.screenshot(path=str(SCREENSHOT), full_page=True)
            waited = time.monotonic() - clicked
            after = page.evaluate(RAIL_IDS_JS, SESSION_RAIL)
            tracked = page.get_attribute(f'#grid .card[data-item-id="{target}"]', "data-tracked")
            reasons = page.eval_on_selector_all(f"{SESSION_RAIL} .recs-reason",
                                                "els => els.map(e => e.textContent)")
            # a click in the rail is a `click` event carrying that answer's rec_id and variant
            shown = {name: page.get_attribute(SESSION_RAIL, f"data-{name}")
                     for name in ("rec-id", "variant")}
            with page.expect_response(lambda r: r.request.method == "POST"
                                      and r.url.endswith("/v1/events")) as answer:
                page.click(f'{SESSION_RAIL} [data-item-id="{after[0][0]}"] a')
            rail_click = orjson.loads(answer.value.request.post_data_buffer or b"")
            rail_click_status = answer.value.status
            # the page's own credentials, turned on another shopper and on forged events
            other = next(u for u in running.users if running.store.get(session_key(u)))
            spied = f"/v1/users/{other}/session-recommendations?explain=true"
            theirs = running.get(spied)  # what a server key sees: the other's history
            spy = page.evaluate(SPY_JS, [spied, other, session_id])
        finally:
            browser.close()

    ids = [i for i, _ in after]
    print(f"\nwidget e2e: clicked {target}; POST /v1/events {tracked}; "
          f"'Because you viewed' changed in {waited * 1000:.0f} ms: {ids}")
    assert page_errors == []
    assert tracked == "ok"  # the server accepted the widget's POST /v1/events
    views = [ev for batch in posted for ev in batch if ev.get("item_id") == target]
    assert [ev["type"] for ev in views] == ["view"]
    for ev in views:
        jsonschema.validate(ev, INTERACTION_SCHEMA)
        assert ev["user_id"] == user
    assert ids != before
    assert {source for _, source in after} == {"session"}
    assert target not in ids  # what was just viewed is not recommended back
    assert set(ids) & set(neighbours), (ids, neighbours)
    assert any(r.startswith("viewed ") for r in reasons), reasons
    assert rail_click_status == 202
    # the token flow: the user and session are the token's, every call carried the public key
    # and the token, never the server key
    assert user.startswith("u-") and session_id.startswith("s-")
    assert {ev["session_id"] for batch in posted for ev in batch} == {session_id}
    assert api_calls and all(
        h.get("authorization") == f"Bearer {creds().public}" and h.get("x-recs-token")
        for _, h in api_calls), api_calls[:3]
    assert not any(creds().server in str(h) for _, h in api_calls)
    # the other shopper has a history behind their answers; the page sees none of it
    assert theirs["source"] == "session" and theirs["items"], theirs
    assert spy["read"][0] == 403 and orjson.loads(spy["read"][1])["error"]["code"] == \
        "forbidden_user"
    assert "items" not in spy["read"][1] and "viewed" not in spy["read"][1]
    assert not any(i["item_id"] in spy["read"][1] for i in theirs["items"])
    assert spy["write"][0] == 403, spy
    assert [(e["type"], e["item_id"], e.get("rec_id"), e.get("variant")) for e in rail_click] \
        == [("click", ids[0], shown["rec-id"], shown["variant"])]
    jsonschema.validate(rail_click[0], INTERACTION_SCHEMA)
    session = running.store.get(session_key(user))
    assert session is not None and target in [e[0] for e in session.data["events"]]

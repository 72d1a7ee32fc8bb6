"""The in-car screen in a real headless Chromium (Debian's, driven by Playwright) against the real
daemon assembly: synthetic street camera, the shipped models, real SQLite, the screen service."""

from __future__ import annotations

import asyncio
import shutil
import socket
import ssl
import subprocess
import threading
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

import pytest
from conftest import free_port, make_config

from alprd.app import build_daemon
from alprd.audit.accesslog import AccessLog
from alprd.auth import Users
from alprd.capture import SyntheticSource
from alprd.hotlist import repository
from alprd.hotlist.entries import Entry
from alprd.screen.server import Screen
from alprd.store import Store

playwright_api = pytest.importorskip("playwright.sync_api")
expect = playwright_api.expect
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
PASSWORD = "correct horse battery"
FIRST_HIT = 6  # the first car whose plate is listed (and the next): it passes ~8 s in, after the page is up


class Unit:
    """A running daemon (own thread and event loop) with its screen on a free port."""

    def __init__(self, root: Path):
        self.config = make_config(root, camera={"source": "synthetic", "frames": 0, "realtime": True},  # until stop()
                                  hotlist={"check_interval_s": 0.2, "alert_repeat_window_s": 600},
                                  screen={"enabled": True, "port": 0, "timezone": "America/Chicago"})
        self.store = Store(self.config.store.path)
        Users(self.store, self.config.policy).add("off1", "operator", PASSWORD, "2026-01-15", by=None)
        Users(self.store, self.config.policy).add("aud1", "auditor", PASSWORD, "2026-01-15", by=None)
        Users(self.store, self.config.policy).add("off2", "operator", PASSWORD, "2026-01-15", by=None)
        probe = SyntheticSource(self.config.camera)
        probe.open()
        self.plates = probe.upcoming_plates(FIRST_HIT + 2)
        repository.replace_department_list(
            self.store, [Entry(p, "stolen_vehicle", priority=1, case_number="CFS-2026-41", note="grey sedan",
                               expires="2099-12-31", source="NCIC") for p in self.plates[FIRST_HIT:FIRST_HIT + 2]],
            "test", 5)
        self.committed: dict[str, float] = {}  # read id -> when its commit returned
        insert = self.store.insert_read

        def timed_insert(read, context=None):
            insert(read, context)
            self.committed[read.id] = time.time()

        self.store.insert_read = timed_insert
        self.daemon = build_daemon(self.config, store=self.store)
        self.loop: asyncio.AbstractEventLoop | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        async def main():
            self.loop = asyncio.get_running_loop()
            await self.daemon.run(install_signals=False)
        asyncio.run(main())

    def url(self, path: str = "/") -> str:
        deadline = time.monotonic() + 30
        while not (screen := self.daemon.status().get("screen", {})).get("url"):
            assert time.monotonic() < deadline, f"the screen did not start: {screen}"
            time.sleep(0.05)
        return screen["url"].rstrip("/") + path

    def stop(self) -> None:
        if self.loop and self.thread.is_alive():
            self.loop.call_soon_threadsafe(self.daemon.request_stop)
        self.thread.join(30)
        assert not self.thread.is_alive(), "the daemon did not stop"

    def actions(self, user: str) -> list[str]:
        return [r.action for r in AccessLog(self.store).show(user=user)]


@pytest.fixture(scope="module")
def unit(tmp_path_factory):
    u = Unit(tmp_path_factory.mktemp("screen"))
    u.thread.start()
    yield u
    u.stop()


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail("chromium is not installed: run `make test`, which installs it (apt-get install chromium)")
    with playwright_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                              args=["--autoplay-policy=no-user-gesture-required", "--no-sandbox"])
        yield b
        b.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    p = context.new_page()
    yield p
    context.close()


def log_in(page, unit, user="off1", password=PASSWORD):
    page.goto(unit.url("/login"))
    page.fill("#username", user)
    page.fill("#password", password)
    page.click("#login-button")


def click(page, selector):
    """Click, after closing an alert that came meanwhile (it takes the whole screen, as it should)."""
    if page.is_visible("#alert"):
        page.click("#alert-close")
    page.click(selector)


def api(page, path, body):
    """A POST from the page's own script (with its CSRF token): what the forms send."""
    return page.evaluate("""async ([path, body]) => {
        const r = await fetch(path, {method: "POST", body: JSON.stringify(body), headers: {
            "Content-Type": "application/json",
            "X-CSRF-Token": document.querySelector('meta[name="csrf"]').content}});
        return {status: r.status, body: await r.json()};
    }""", [path, body])


def test_wrong_password_is_refused_and_logged(page, unit):
    log_in(page, unit, password="not the password")
    assert "/login" in page.url
    assert "login failed" in page.inner_text("#login-error")
    assert "login.failed" in unit.actions("off1")
    assert page.request.get(unit.url("/api/reads")).status == 401  # no session, no data


def test_too_many_wrong_passwords_lock_the_account_as_in_the_cli(page, unit):
    for _ in range(unit.config.policy.max_failed_logins):
        log_in(page, unit, user="off2", password="not the password")
    log_in(page, unit, user="off2")  # the right password, too late
    assert "locked" in page.inner_text("#login-error") and "/login" in page.url
    assert "login.refused" in unit.actions("off2")


def test_live_view_shows_reads_and_health_and_the_view_is_logged(page, unit):
    log_in(page, unit)
    page.wait_for_selector("#reads .read", timeout=20_000)
    card = page.inner_text("#reads .read")
    assert "cam0" in card and ("CST" in card or "CDT" in card)  # the unit's time zone
    health = page.inner_text("#health")
    for name in ("camera:", "GPS:", "broker:", "backlog:", "hotlist: v5"):
        assert name in health, health
    assert "screen.live" in unit.actions("off1")


def test_a_hotlist_hit_takes_the_screen_with_the_verification_notice(page, unit):
    log_in(page, unit)
    page.wait_for_selector("#alert:not([hidden])", timeout=40_000)
    alert_id = page.evaluate("window.alprdScreen.alert.id")
    (row,) = unit.store.query("select id, read_id from alerts where id = ?", [alert_id])
    latency = page.evaluate("window.alprdScreen.shownAt") / 1000 - unit.committed[row["read_id"]]
    assert 0 < latency < 1.0, f"the alert took {latency:.2f} s after the read's commit"
    text = page.inner_text("#alert")
    assert "NCIC" in text and "before any enforcement action" in text
    assert "stolen vehicle priority 1" in text.lower() and "CFS-2026-41" in text and "grey sedan" in text
    assert page.evaluate("window.alprdScreen.tone !== null")  # the tone repeats until acknowledged
    assert page.evaluate("window.alprdScreen.tone.priority") == 1
    assert page.get_attribute("#alert-context", "src").startswith("data:image/jpeg;base64,")

    page.fill("#alert-note-input", "plate checked")
    page.click(".dispositions button[data-d=misread]")
    page.wait_for_selector("#alert-history li")
    assert page.evaluate("window.alprdScreen.tone") is None  # a disposition silences it
    page.click(".dispositions button[data-d=wrong_state]")
    expect(page.locator("#alert-history li")).to_have_count(2)
    history = unit.store.query("select disposition, note, user from alert_dispositions where alert_id = ? "
                               "order by ts", [row["id"]])
    assert history == [{"disposition": "misread", "note": "plate checked", "user": "off1"},
                       {"disposition": "wrong_state", "note": "", "user": "off1"}]
    assert {"screen.alert", "screen.alert.disposition"} <= set(unit.actions("off1"))


def test_a_stale_session_is_refused(page, unit):
    log_in(page, unit)
    page.wait_for_selector("#reads")
    with unit.store.transaction() as db:  # the session runs out (policy.session_minutes)
        db.execute("update sessions set expires_at = '2000-01-01T00:00:00.000000Z'")
    assert page.request.get(unit.url("/api/reads")).status == 401
    page.reload()
    assert page.url.endswith("/login?expired=1")
    assert "session has ended" in page.inner_text("form")


def test_officer_actions_follow_the_cli_rules_and_are_logged(page, unit):
    log_in(page, unit)
    page.wait_for_selector("#reads .read", timeout=20_000)
    # a POST without the page's CSRF token is refused
    assert page.request.post(unit.url("/api/bolo"), data={"plate": "ABC123"}).status == 403
    no_case = api(page, "/api/bolo", {"plate": "AB?12*", "expires": "2099-01-01"})
    assert no_case["status"] == 400 and "case number" in no_case["body"]["error"]
    no_expiry = api(page, "/api/bolo", {"plate": "AB?12*", "case_number": "CFS-2026-90", "expires": ""})
    assert no_expiry["status"] == 400 and "expiry" in no_expiry["body"]["error"]

    click(page, "nav button[data-view=bolo]")
    assert page.input_value("#bolo-form input[name=expires]")  # 24 hours ahead by default
    page.fill("#bolo-form input[name=plate]", "XY?9*")
    page.fill("#bolo-form input[name=case_number]", "CFS-2026-90")
    page.fill("#bolo-form input[name=note]", "armed robbery, dark van")
    click(page, "#bolo-form button[type=submit]")
    expect(page.locator("#bolo-result")).to_contain_text("on the hotlist")
    (bolo,) = unit.store.query("select plate, case_number, entered_by, expires_at from bolo_uploads")
    assert bolo["plate"] == "XY?9*" and bolo["case_number"] == "CFS-2026-90" and bolo["entered_by"] == "off1"
    assert repository.list_entries(unit.store, pattern="XY?9*")

    click(page, "nav button[data-view=search]")
    page.fill("#search-form input[name=plate]", unit.plates[0][:3] + "*")
    click(page, "#search-form button[type=submit]")
    expect(page.locator("#search-result")).to_contain_text("case/CFS number")
    assert page.is_hidden("#hold-form")
    page.fill("#search-form input[name=plate]", "")
    page.fill("#search-form input[name=from]", datetime.now(UTC).date().isoformat())
    page.fill("#search-form input[name=case]", "CFS-2026-41")
    page.fill("#search-form input[name=reason]", "stolen vehicle follow-up")
    click(page, "#search-form button[type=submit]")
    page.wait_for_selector("#search-reads .read")
    page.check("#search-reads .pick >> nth=0")
    click(page, "#hold-form button[type=submit]")
    expect(page.locator("#hold-result")).to_contain_text("kept as evidence")
    (hold,) = unit.store.query("select case_number, created_by from evidence_holds")
    assert hold == {"case_number": "CFS-2026-41", "created_by": "off1"}
    actions = unit.actions("off1")
    assert {"screen.bolo.add", "screen.search", "screen.hold.add"} <= set(actions)
    (search,) = [r for r in AccessLog(unit.store).show(user="off1", action="screen.search")]
    assert search.case_number == "CFS-2026-41" and search.records >= 1


def test_an_auditor_sees_no_plates(page, unit):
    log_in(page, unit, user="aud1")
    expect(page.locator("#banner")).to_contain_text("may not")  # the refusal, however the live stream's banner races it
    assert "denied" in unit.actions("aud1")


def _serve(config, store, until):
    """Run a Screen service alone until ``until(screen)`` is true (or 20 s); returns the screen."""
    screen = Screen(config, store, dict)

    async def main():
        stop = asyncio.Event()
        task = asyncio.create_task(screen.run(stop))
        deadline = time.monotonic() + 20
        while not (await asyncio.to_thread(until, screen)) and time.monotonic() < deadline and not task.done():
            await asyncio.sleep(0.05)
        stop.set()
        await task

    thread = threading.Thread(target=asyncio.run, args=(main(),))  # Playwright's loop holds this thread
    thread.start()
    thread.join(30)
    return screen


def test_a_tablet_gets_the_screen_over_tls(tmp_path):
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=car7",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(tmp_path / "screen.key"),
                    "-out", str(tmp_path / "screen.pem")], check=True, capture_output=True)
    config = make_config(tmp_path, screen={"enabled": True, "host": "127.0.0.1", "port": free_port(),
                                           "tls_cert": str(tmp_path / "screen.pem"),
                                           "tls_key": str(tmp_path / "screen.key")})
    trust = ssl.create_default_context(cafile=str(tmp_path / "screen.pem"))
    pages = []

    def fetched(screen):
        if not screen.url:
            return False
        pages.append(urllib.request.urlopen(screen.url + "login", context=trust, timeout=5).read().decode())
        return True

    screen = _serve(config, Store(tmp_path / "alprd.db"), fetched)
    assert screen.url.startswith("https://") and "Log in" in pages[0]


def test_a_taken_port_leaves_the_daemon_without_its_screen_not_stopped(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        config = make_config(tmp_path, screen={"enabled": True, "port": taken.getsockname()[1]})
        screen = _serve(config, Store(tmp_path / "alprd.db"), lambda s: s.error)
    assert "cannot listen on 127.0.0.1" in screen.status()["error"] and "screen.port" in screen.status()["error"]

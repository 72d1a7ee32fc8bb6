"""The screen's web server: aiohttp inside the daemon's event loop, as the ``screen`` service.

Sessions are the CLI's (``alprd.auth.Sessions``): a login issues the same kind of token that
``alprd login`` prints, kept in an HttpOnly, SameSite=Strict cookie; every POST also carries a
CSRF token derived from it. A stale, revoked or unknown session (or a user disabled since) is
refused: pages redirect to the login, the API answers 401. Every response that shows stored data
passes :func:`alprd.auth.authorize` and writes its access record (user, time, action, query,
purpose, count) exactly as a command does; database work runs in worker threads, off the loop.

Live updates: ``/api/events`` is a server-sent event stream that says "read <id>" or "alert <id>"
as each commits; the page then fetches what it shows through the logged endpoints. Each client's
queue is bounded; a client too slow to keep up is dropped (its page reconnects), and at most
``max_clients`` streams are open at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import ssl
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from html import escape
from importlib import resources
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web

from alprd.auth import DATA_ROLES, AuthError, Sessions, User, Users, authorize, require_usable
from alprd.config import Config
from alprd.hotlist import repository
from alprd.hotlist.alerts import Disposition, disposition_history, list_alerts, set_disposition
from alprd.hotlist.entries import make_entry
from alprd.log import get_logger
from alprd.policy.evidence import add_hold
from alprd.policy.search import SearchError, SearchQuery, search
from alprd.records import Read, iso
from alprd.screen import views
from alprd.store import Store

COOKIE = "alprd_session"
QUEUE = 64  # events waiting for one client; a client this far behind is dropped
KEEPALIVE_S = 15.0  # an SSE comment this often (and the session checked again)
MAX_BODY = 64 * 1024  # a form or JSON body
BOLO_DEFAULT_H = 24
STATIC = resources.files("alprd.screen") / "static"

Listener = Callable[[], None]
USER = web.RequestKey("user", User)
TOKEN = web.RequestKey("token", str)


def csrf_token(session: str) -> str:
    """The CSRF token of a session: derived from its secret, so only the page that has it can send it."""
    return hmac.new(session.encode(), b"alprd-screen-csrf", hashlib.sha256).hexdigest()


def _page(name: str, **values: str) -> web.Response:
    """A static page with ``{{key}}`` filled in (HTML-escaped)."""
    html = (STATIC / name).read_text(encoding="utf-8")
    for key, value in values.items():
        html = html.replace("{{" + key + "}}", escape(value))
    return web.Response(text=html, content_type="text/html",
                        headers={"Cache-Control": "no-store", "X-Frame-Options": "DENY",
                                 "Content-Security-Policy": "default-src 'self'; img-src 'self' data:"})


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


class Screen:
    """The screen service: ``run(stop)`` serves until the daemon stops; ``on_read``/``on_alert`` feed it."""

    def __init__(self, config: Config, store: Store, status: Callable[[], dict[str, Any]]):
        self.config = config
        self.cfg = config.screen
        self.store = store
        self._status = status
        self.zone = ZoneInfo(self.cfg.timezone) if self.cfg.timezone else None
        self._clients: set[asyncio.Queue] = set()
        self._on_record: list[Listener] = []
        self.dropped_clients = 0
        self.error: str | None = None
        self.url: str | None = None
        self.log = get_logger("alprd.screen")
        self.app = web.Application(client_max_size=MAX_BODY, middlewares=[self._session])
        self.app.add_routes([
            web.get("/", self._index), web.get("/login", self._login_page), web.post("/login", self._login),
            web.post("/logout", self._logout), web.get("/static/{name}", self._static),
            web.get("/api/events", self._events), web.get("/api/health", self._health),
            web.get("/api/reads", self._reads), web.get("/api/alerts", self._alerts),
            web.get("/api/alerts/{id}", self._alert), web.post("/api/alerts/{id}/disposition", self._disposition),
            web.post("/api/bolo", self._bolo), web.post("/api/search", self._search), web.post("/api/hold", self._hold),
        ])

    # -- wiring ---------------------------------------------------------------------
    def on_record(self, listener: Listener) -> None:
        """Call ``listener`` after an officer's disposition or BOLO is committed (the uplink's wake-up)."""
        self._on_record.append(listener)

    def on_read(self, read: Read) -> None:
        """Read listener: tell the open pages."""
        self._publish("read", read.id)

    def on_alert(self, alert: dict[str, Any]) -> None:
        """Alert listener: the alert takes every open page."""
        self._publish("alert", alert["id"])

    def _publish(self, event: str, ident: str) -> None:
        for queue in list(self._clients):
            try:
                queue.put_nowait((event, ident))
            except asyncio.QueueFull:  # too slow: dropped; its page reconnects and reloads
                self._clients.discard(queue)
                self.dropped_clients += 1

    def status(self) -> dict[str, Any]:
        return {"url": self.url, "error": self.error, "clients": len(self._clients),
                "dropped_clients": self.dropped_clients}

    # -- the service ------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        runner = web.AppRunner(self.app, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        context = None
        if self.cfg.tls_cert:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            try:
                context.load_cert_chain(self.cfg.tls_cert, self.cfg.tls_key)
            except (OSError, ssl.SSLError) as err:
                return await self._fail(runner, f"screen.tls_cert/tls_key cannot be loaded: {err}")
        site = web.TCPSite(runner, self.cfg.host, self.cfg.port, ssl_context=context)
        try:
            await site.start()
        except OSError as err:  # the daemon goes on reading and alerting without its screen
            return await self._fail(runner, f"cannot listen on {self.cfg.host}:{self.cfg.port} ({err.strerror or err})"
                                            "; set screen.port to a free port")
        port = runner.addresses[0][1] if runner.addresses else self.cfg.port
        self.url = f"{'https' if context else 'http'}://{self.cfg.host}:{port}/"
        self.log.info("screen_listening", url=self.url)
        try:
            await stop.wait()
        finally:
            for queue in list(self._clients):  # open streams end now, not at the shutdown timeout
                with contextlib.suppress(asyncio.QueueFull):
                    queue.put_nowait(("bye", ""))
            await runner.cleanup()

    async def _fail(self, runner: web.AppRunner, message: str) -> None:
        self.error = message
        self.log.error("screen_unavailable", error=message)
        await runner.cleanup()

    # -- sessions ---------------------------------------------------------------------
    def _user(self, token: str | None) -> tuple[User, str]:
        """The member behind a session cookie (blocking); AuthError when stale, unknown or no longer usable."""
        if not token:
            raise AuthError("not logged in")
        user = Users(self.store, self.config.policy).require(Sessions(self.store, self.config.policy).resolve(token))
        require_usable(user)
        return user, token

    @web.middleware
    async def _session(self, request: web.Request, handler) -> web.StreamResponse:
        if request.path == "/login" or request.path.startswith("/static/"):
            return await handler(request)
        api = request.path.startswith("/api/")
        try:
            user, token = await asyncio.to_thread(self._user, request.cookies.get(COOKIE))
        except AuthError as err:
            if api or request.method != "GET":
                return _error(401, f"{err}: log in again")
            raise web.HTTPSeeOther("/login?expired=1" if request.cookies.get(COOKIE) else "/login") from None
        if request.method == "POST" and not hmac.compare_digest(request.headers.get("X-CSRF-Token", ""),
                                                                csrf_token(token)):
            return _error(403, "request refused: missing or wrong CSRF token (reload the page)")
        request[USER], request[TOKEN] = user, token
        return await handler(request)

    # -- pages ------------------------------------------------------------------------
    async def _login_page(self, request: web.Request) -> web.Response:
        note = "Your session has ended: log in again." if request.query.get("expired") else ""
        return _page("login.html", error="", note=note)

    async def _login(self, request: web.Request) -> web.Response:
        form = await request.post()
        username, password = str(form.get("username", "")).strip(), str(form.get("password", ""))
        try:
            user = await asyncio.to_thread(Users(self.store, self.config.policy).authenticate, username, password)
            token, _ = await asyncio.to_thread(Sessions(self.store, self.config.policy).issue, user.username)
        except AuthError as err:  # audited by authenticate: failure, lockout, untrained
            return _page("login.html", error=str(err), note="")
        response = web.HTTPSeeOther("/")
        response.set_cookie(COOKIE, token, httponly=True, samesite="Strict", secure=self.cfg.tls_cert is not None,
                            max_age=self.config.policy.session_minutes * 60, path="/")
        raise response

    async def _logout(self, request: web.Request) -> web.Response:
        await asyncio.to_thread(Sessions(self.store, self.config.policy).revoke, request[TOKEN])
        response = web.json_response({"ok": True})
        response.del_cookie(COOKIE, path="/")
        return response

    async def _index(self, request: web.Request) -> web.Response:
        user: User = request[USER]
        return _page("app.html", user=user.username, role=user.role.value, csrf=csrf_token(request[TOKEN]),
                     tomorrow=(datetime.now(UTC) + timedelta(hours=BOLO_DEFAULT_H)).date().isoformat())

    async def _static(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in ("screen.js", "screen.css"):
            raise web.HTTPNotFound()
        kind = "application/javascript" if name.endswith(".js") else "text/css"
        return web.Response(text=(STATIC / name).read_text(encoding="utf-8"), content_type=kind)

    # -- data (each access authorised and logged) --------------------------------------
    async def _access(self, request: web.Request, action: str, work: Callable[..., tuple[Any, dict, int]],
                      case: str | None = None, reason: str | None = None, require_reason: bool = False,
                      status: int = 200) -> web.Response:
        """Authorise ``action``, do ``work(access)`` -> (body, query, records), write the access record."""

        def run() -> Any:
            access = authorize(self.store, self.config, request[USER], action, DATA_ROLES, case, reason,
                               require_reason)
            body, query, records = work(access)
            access.record(query, records=records)
            return body

        try:
            body = await asyncio.to_thread(run)
        except AuthError as err:
            return _error(403, str(err))
        except ValueError as err:  # bad input: SearchError, EntryError, EvidenceError ...
            return _error(400, str(err))
        except LookupError as err:
            return _error(404, str(err.args[0]))
        return web.json_response(body, status=status)

    async def _json(self, request: web.Request) -> dict[str, Any]:
        try:
            body = await request.json()
        except (ValueError, UnicodeDecodeError):
            raise web.HTTPBadRequest(text="the request body is not JSON") from None
        if not isinstance(body, dict):
            raise web.HTTPBadRequest(text="the request body is not a JSON object")
        return body

    async def _health(self, request: web.Request) -> web.Response:
        """Health figures only (no stored data): not an access."""
        up = self.config.uplink
        return web.json_response({"health": views.health(self._status(), (up.backlog_warn_days,
                                                                           up.backlog_critical_days))})

    async def _reads(self, request: web.Request) -> web.Response:
        def work(access):
            rows = self.store.query("select * from reads order by ts desc limit ?", [self.cfg.live_reads])
            return [views.read_view(r, self.zone) for r in rows], {"view": "live", "last": self.cfg.live_reads}, \
                len(rows)
        return await self._access(request, "screen.live", work)

    async def _alerts(self, request: web.Request) -> web.Response:
        def work(access):
            rows = list_alerts(self.store, limit=50)
            return [views.alert_line(r, self.zone) for r in rows], {"view": "alerts"}, len(rows)
        return await self._access(request, "screen.alerts", work)

    def _alert_body(self, alert_id: str) -> dict[str, Any]:
        rows = self.store.query("select * from alerts where id = ?", [alert_id])
        if not rows:
            raise LookupError(f"no alert {alert_id} (purged, or never here)")
        row = rows[0]
        return views.alert_view(row, self.store.get_read(row["read_id"]), self.store.read_context(row["read_id"]),
                                disposition_history(self.store, alert_id), self.zone)

    async def _alert(self, request: web.Request) -> web.Response:
        alert_id = request.match_info["id"]
        return await self._access(request, "screen.alert",
                                  lambda access: (self._alert_body(alert_id), {"alert_id": alert_id}, 1))

    async def _disposition(self, request: web.Request) -> web.Response:
        alert_id = request.match_info["id"]
        body = await self._json(request)
        note = " ".join(str(body.get("note", "")).split())[:500]

        def work(access):
            try:
                disposition = Disposition(body.get("disposition"))
            except ValueError:
                raise ValueError(f"disposition must be one of {', '.join(d.value for d in Disposition)}") from None
            if not set_disposition(self.store, alert_id, disposition, access.username, note):
                raise LookupError(f"no alert {alert_id}")
            return self._alert_body(alert_id), {"alert_id": alert_id, "disposition": disposition.value}, 1

        response = await self._access(request, "screen.alert.disposition", work)
        self._recorded(response)
        return response

    def _recorded(self, response: web.Response) -> None:
        if response.status < 300:
            for listener in self._on_record:
                listener()

    async def _bolo(self, request: web.Request) -> web.Response:
        body = await self._json(request)
        case = str(body.get("case_number", "")).strip()

        def work(access):
            if not access.case_number:
                raise ValueError("a BOLO needs the case number of the major crime it is for")
            if not str(body.get("expires", "")).strip():
                raise ValueError("a BOLO needs an expiry date (default: 24 hours from now)")
            fields = {k: body.get(k, "") for k in ("category", "state", "note", "expires")}
            entry = make_entry({**fields, "pattern": body.get("plate", ""), "case_number": access.case_number,
                                "source": f"officer:{access.username}", "priority": body.get("priority") or 2},
                               self.config.hotlist, officer_entered=True)
            if entry.expires < datetime.now(UTC).date().isoformat():
                raise ValueError(f"expiry {entry.expires} has passed: give a date from today on")
            entry_id = repository.add_officer_entry(self.store, entry, access.username)
            view = {"id": entry_id, "plate": entry.pattern, "category": entry.category, "expires": entry.expires,
                    "priority": entry.priority}
            return view, {"plate": entry.pattern, "category": entry.category, "id": entry_id}, 1

        # a case number given is checked as the CLI checks it; none at all is refused in work()
        response = await self._access(request, "screen.bolo.add", work, case=case or None, require_reason=bool(case),
                                      status=201)
        self._recorded(response)
        return response

    async def _search(self, request: web.Request) -> web.Response:
        body = await self._json(request)

        def work(access):
            since, until = (_day(body.get(k), end) for k, end in (("from", False), ("to", True)))
            query = SearchQuery(plate=str(body.get("plate") or "").strip() or None, since=since, until=until,
                                limit=100)
            rows = search(self.store, query)
            return [views.read_view(r, self.zone) for r in rows], query.as_dict(), len(rows)

        return await self._access(request, "screen.search", work, case=body.get("case"), reason=body.get("reason"),
                                  require_reason=True)

    async def _hold(self, request: web.Request) -> web.Response:
        body = await self._json(request)
        ids = body.get("read_ids")

        def work(access):
            if not (access.case_number and access.reason):
                raise ValueError("an evidence hold needs a case number and a reason")
            if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
                raise ValueError("read_ids must be a list of read ids")
            hold_id = add_hold(self.store, access.case_number, access.reason, ids, access.username)
            return {"hold_id": hold_id, "reads": len(set(ids))}, {"hold_id": hold_id, "reads": sorted(set(ids))}, \
                len(set(ids))

        return await self._access(request, "screen.hold.add", work, case=body.get("case"), reason=body.get("reason"),
                                  require_reason=True, status=201)

    # -- live events ------------------------------------------------------------------
    async def _events(self, request: web.Request) -> web.StreamResponse:
        if len(self._clients) >= self.cfg.max_clients:
            return _error(503, f"the screen serves at most {self.cfg.max_clients} live pages at once")
        queue: asyncio.Queue = asyncio.Queue(QUEUE)
        self._clients.add(queue)
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store"})
        try:
            await response.prepare(request)
            await response.write(b": live\n\n")
            while queue in self._clients:
                try:
                    event, ident = await asyncio.wait_for(queue.get(), KEEPALIVE_S)
                except TimeoutError:
                    try:
                        await asyncio.to_thread(self._user, request[TOKEN])
                    except AuthError:
                        event, ident = "expired", ""
                    else:
                        await response.write(b": keepalive\n\n")
                        continue
                if event == "bye":
                    break
                await response.write(f"event: {event}\ndata: {json.dumps({'id': ident})}\n\n".encode())
                if event == "expired":
                    break
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            self._clients.discard(queue)
        return response


def _day(text: Any, end: bool) -> str | None:
    """``YYYY-MM-DD`` from a date field (UTC day; ``end``: through that day)."""
    text = str(text or "").strip()
    if not text:
        return None
    try:
        day = datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError:
        raise SearchError(f"date {text[:20]!r}: write YYYY-MM-DD") from None
    return iso(day + timedelta(days=1) if end else day)

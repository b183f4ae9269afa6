"""The local console: a window onto the local stack's state. Local only, never deployed.

Every page is a function added to a :class:`Pages` collection; the index links them all. A module
that has pages keeps its own collection (``report_page.PAGES``, ``smtp.PAGES``: ``/rejected``) and
the stack hands them all to :func:`console`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from html import escape
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs, urlsplit

from infra.local.outbox import Outbox
from infra.local.services import HttpService

log = logging.getLogger("infra.local")

HIDDEN_TICKET_ATTRIBUTES = frozenset({"token_hash"})  # never shown, even locally


@dataclass(frozen=True)
class Page:
    path: str
    title: str
    render: Callable[..., tuple[str, str]]  # (state[, query]) -> (content type, body)
    query: bool = False  # the page reads query parameters: render(state, {name: value})


class BadRequest(ValueError):
    """A page's parameters are wrong: 400 with this message."""


@dataclass
class ConsoleState:
    outbox: Outbox
    status: Callable[[], dict] = dict  # what the stack's services and emulator report (``/status``)


class Pages(dict[str, Page]):
    """Pages by path (``@pages.add(path, title)``; ``query=True``: the page reads query parameters) and
    the console's POST operations (``@pages.action(path)``, e.g. replaying a dead-letter queue)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.actions: dict[str, Callable[[ConsoleState, dict[str, str]], tuple[str, str]]] = {}

    def add(self, path: str, title: str, *, query: bool = False):
        def register(render: Callable[..., tuple[str, str]]):
            self[path] = Page(path, title, render, query)
            return render
        return register

    def action(self, path: str):
        def register(run: Callable[[ConsoleState, dict[str, str]], tuple[str, str]]):
            self.actions[path] = run
            return run
        return register

    @classmethod
    def merged(cls, *groups: Pages) -> Pages:
        pages = cls()
        for group in groups:
            pages.update(group)
            pages.actions.update(group.actions)
        return pages


PAGES = Pages()



def _json(value) -> tuple[str, str]:
    return "application/json", json.dumps(value, indent=2, default=str)


def all_tickets() -> list[dict]:
    """Every ticket item in the table (not the timeline events), oldest first, without its token hash."""
    from helpdesk.models import TICKET_SK, Ticket

    items = [t.to_simple_dict() for t in Ticket.scan(Ticket.sk == TICKET_SK)]
    for item in items:
        for name in HIDDEN_TICKET_ATTRIBUTES:
            item.pop(name, None)
    return sorted(items, key=lambda t: (t.get("created_at") or "", t.get("ticket_id") or ""))


@PAGES.add("/tickets", "Tickets (JSON)")
def _tickets(state: ConsoleState):
    return _json(all_tickets())


@PAGES.add("/outbox", "Outbox: every message the system has sent (JSON)")
def _outbox(state: ConsoleState):
    return _json(state.outbox.as_json())


_CHANNEL_COLOURS = {"email": "#1d4ed8", "sms": "#047857", "team-alert": "#b91c1c"}


@PAGES.add("/outbox.html", "Outbox, to read: newest first, refreshed every few seconds")
def _outbox_html(state: ConsoleState):
    messages = list(reversed(state.outbox.messages()))
    counts = {}
    for m in messages:
        counts[m.channel] = counts.get(m.channel, 0) + 1
    summary = ", ".join(f"{n} {escape(c)}" for c, n in sorted(counts.items())) or "nothing sent yet"
    items = "".join(
        f'<article><header><span class="channel" style="background:{_CHANNEL_COLOURS.get(m.channel, "#444")}">'
        f"{escape(m.channel)}</span> <time>{escape(m.time)}</time> to <b>{escape(m.recipient)}</b>"
        f"{f' &middot; {escape(m.ticket_id)}' if m.ticket_id else ''}"
        f"{f' &middot; <i>{escape(m.event_type)}</i>' if m.event_type else ''}</header>"
        f"{f'<h2>{escape(m.subject)}</h2>' if m.subject else ''}<pre>{escape(m.body)}</pre></article>"
        for m in messages)
    return "text/html; charset=utf-8", (
        '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Outbox - Helpdesk local console</title>'
        "<style>body{font:15px/1.45 system-ui,sans-serif;max-width:52rem;margin:2rem auto;padding:0 1rem}"
        "article{border:1px solid #ddd;border-radius:6px;padding:.6rem .9rem;margin:.8rem 0}"
        "h2{font-size:1rem;margin:.4rem 0}pre{white-space:pre-wrap;margin:.3rem 0;font:13px/1.4 ui-monospace,monospace}"
        ".channel{color:#fff;border-radius:4px;padding:0 .4rem;font-size:.8rem}time{color:#555}</style>"
        # Reload while the reader is at the top and not selecting: new messages appear without a click.
        "<script>setInterval(()=>{if(scrollY===0&&!String(getSelection()))location.reload()},3000)</script>"
        f'</head><body><h1>Outbox</h1><p>{summary}. JSON for tools: <a href="/outbox">/outbox</a>.</p>'
        f"{items}</body></html>")


@PAGES.add("/status", "The pumps' last ticks and what the AWS emulator did (JSON)")
def _status(state: ConsoleState):
    return _json(state.status())


def index_html(pages: Pages) -> str:
    links = "".join(f'<li><a href="{escape(p.path)}">{escape(p.title)}</a> <code>{escape(p.path)}</code></li>'
                    for p in pages.values())
    return ('<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Helpdesk local console</title>'
            '<style>body{font:16px/1.5 system-ui,sans-serif;max-width:42rem;margin:2rem auto;padding:0 1rem}'
            '</style></head><body><h1>Helpdesk local console</h1>'
            '<p>The state of the local stack. Local only: this console is never deployed.</p>'
            f"<ul>{links}</ul></body></html>")


class ConsoleRequestHandler(BaseHTTPRequestHandler):
    """Reads ``self.server.state`` (a :class:`ConsoleState`) and ``self.server.pages``."""

    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:  # noqa: N802 - the base class's naming
        self._answer("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._answer("POST")

    def _answer(self, method: str) -> None:
        url = urlsplit(self.path)
        path = url.path.rstrip("/") or "/"
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        try:
            pages = self.server.pages
            if method == "POST":
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)  # nothing is read from a body: drain it
                if path in pages.actions:
                    status, (content_type, body) = 200, pages.actions[path](self.server.state, query)
                else:
                    status, (content_type, body) = 404, _json({"error": "not_found", "actions": list(pages.actions)})
            elif path == "/":
                status, (content_type, body) = 200, ("text/html; charset=utf-8", index_html(pages))
            elif path in pages:
                shown = pages[path]
                render = shown.render(self.server.state, query) if shown.query else shown.render(self.server.state)
                status, (content_type, body) = 200, render
            else:
                status, (content_type, body) = 404, _json({"error": "not_found", "pages": ["/", *pages]})
        except BadRequest as error:
            status, (content_type, body) = 400, _json({"error": "bad_request", "message": str(error)})
        except Exception:
            log.exception("console %s %s failed", method, path)
            status, (content_type, body) = 500, _json({"error": "internal_error"})
        payload = body.encode("utf-8")
        self.send_response_only(status)
        self.send_header("Date", self.date_time_string())
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - the base class's name
        log.debug(format, *args)


def console(port: int, state: ConsoleState, pages: Pages = PAGES) -> HttpService:
    return HttpService("console", ConsoleRequestHandler, port, state=state, pages=pages)

"""The customer's HTML pages: the support form, the confirmation and the private ticket page.

Every value a customer typed is escaped here, where it is shown; it is stored as given.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from html import escape
from urllib.parse import quote

from helpdesk import clock
from helpdesk.config import load_policy
from helpdesk.models import CLOSED, PAUSED
from helpdesk.tickets import CATEGORIES, DESCRIPTION_MAX, SUBJECT_MAX

_STYLE = """
body{font:16px/1.5 system-ui,sans-serif;max-width:42rem;margin:2rem auto;padding:0 1rem;color:#1d2330}
h1{font-size:1.5rem}label{display:block;margin-top:1rem;font-weight:600}
input,select,textarea{width:100%;padding:.5rem;font:inherit;box-sizing:border-box}
fieldset{border:0;padding:0;margin:1rem 0 0}legend{font-weight:600}
label.choice{display:flex;align-items:center;gap:.5rem;margin-top:.4rem;font-weight:400}label.choice input{width:auto;margin:0}
textarea{min-height:8rem}button{margin-top:1rem;padding:.6rem 1.2rem;font:inherit;cursor:pointer}
dl{display:grid;grid-template-columns:max-content 1fr;gap:.25rem 1rem}dt{font-weight:600}
.timeline{list-style:none;padding:0}.timeline li{border-left:3px solid #8aa;padding:.25rem .75rem;margin:.75rem 0}.body{white-space:pre-wrap}
.meta{color:#566;font-size:.9rem}.ref{font-family:monospace;font-size:1.4rem}.error{color:#a11}
"""


def _when(iso: str | None, zone: str | None = None) -> str:
    """A time in the customer's zone (the team's when unknown), machine-readable in ``datetime``."""
    if not iso:
        return ""
    shown = clock.human(clock.from_iso(iso), zone or load_policy().time_zone)
    return f'<time datetime="{escape(iso)}">{escape(shown)}</time>'


# The form's one script tells us the customer's time zone, so their pages and emails use it.
_ZONE_SCRIPT = ('document.getElementById("time_zone").value='
                'Intl.DateTimeFormat().resolvedOptions().timeZone||"";')


def _sha256(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


# Every response's policy: nothing runs or loads but our own style and script (by their hashes), forms
# post only to us, no site may frame the pages, and no Referer (the private link carries the token) leaves.
SECURITY_HEADERS = {
    "Content-Security-Policy": f"default-src 'none'; style-src {_sha256(_STYLE)}; script-src {_sha256(_ZONE_SCRIPT)}; "
                               "form-action 'self'; "
                               "frame-ancestors 'none'; base-uri 'none'",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Strict-Transport-Security": "max-age=31536000; includeSubDomains",
    "Cache-Control": "no-store",  # tokens and private tickets: never in a shared or back-button cache
}


def _page(title: str, body: str) -> str:
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head><body>{body}</body></html>"
    )


def support_form(base: str) -> str:
    """The form carries a fresh submission key: a double click or a reload of the confirmation
    posts the same key again and gets the same ticket, never a second one."""
    options = "".join(f'<option value="{c}">{c.capitalize()}</option>' for c in CATEGORIES)
    return _page("Contact support", f"""
<h1>Contact support</h1>
<form method="post" action="{escape(base)}tickets" id="support-form">
  <input type="hidden" name="idempotency_key" value="{secrets.token_urlsafe(16)}" autocomplete="off">
  <input type="hidden" name="time_zone" id="time_zone" value="">
  <label for="name">Your name</label><input id="name" name="name" maxlength="200" autocomplete="name">
  <label for="email">Email</label><input id="email" name="email" type="email" required autocomplete="email">
  <label for="category">Topic</label><select id="category" name="category">{options}</select>
  <label for="subject">Subject</label><input id="subject" name="subject" required maxlength="{SUBJECT_MAX}">
  <label for="description">How can we help?</label>
  <textarea id="description" name="description" required maxlength="{DESCRIPTION_MAX}"></textarea>
  <button type="submit">Send request</button>
</form>
<script>{_ZONE_SCRIPT}</script>""")


def ticket_link(ticket_id: str, token: str) -> str:
    """The private link, relative to the API root (the page's base)."""
    return f"tickets/{quote(ticket_id)}?token={quote(token)}"


def confirmation(created: dict, base: str, zone: str | None = None) -> str:
    link = base + ticket_link(created["id"], created["access_token"])
    return _page(f"Request {created['id']} received", f"""
<h1>Thank you, we have your request</h1>
<p>Your reference is <strong class="ref" id="reference">{escape(created['id'])}</strong>.</p>
<p>We will reply by {_when(created['first_response_due_at'], zone)}.</p>
<p><a id="private-link" href="{escape(link)}">Follow your request</a>. This link is private:
anyone who has it can read the request, so keep it to yourself.</p>""")


# What each timeline entry is called on the customer's page (unknown types show as they are).
_ENTRY_TITLES = {
    ("created", "customer"): "You opened this request",
    ("message", "customer"): "You wrote",
    ("reply", "agent"): "Our team replied",
    ("escalated", "system"): "Passed to a senior team",
    ("escalated", "agent"): "Passed to a senior team",
    ("transferred", "agent"): "Passed to another team",
    ("status_changed", "agent"): "Status changed",
}


# What each status means to the customer (the value itself is in ``data-status``).
_STATUS_WORDS = {
    "new": "Received: waiting for our team",
    "open": "In progress",
    "pending_customer": "Waiting for your reply",
    "resolved": "Resolved",
    "closed": "Closed",
}


def _clock_rows(view: dict) -> str:
    """The promises that still matter: a first reply not given yet, a resolution not reached yet."""
    zone = view["time_zone"]
    if view["first_responded_at"]:
        rows = f'<dt>First reply</dt><dd id="first-response">{_when(view["first_responded_at"], zone)}</dd>'
    else:
        rows = f'<dt>First reply due</dt><dd id="first-response-due">{_when(view["first_response_due_at"], zone)}</dd>'
    if view["status"] == PAUSED:
        rows += '<dt>Resolution due</dt><dd id="resolution-due">on hold until you reply</dd>'
    elif view["status"] not in CLOSED:
        rows += f'<dt>Resolution due</dt><dd id="resolution-due">{_when(view["resolution_due_at"], zone)}</dd>'
    return rows


def ticket_page(view: dict, token: str, base: str, *, cursor: str | None = None) -> str:
    """The ticket with one page of its conversation: the latest entries, or earlier ones (``cursor``)."""
    entries = "".join(
        f'<li><div class="meta">{_when(e["at"], view["time_zone"])} &middot; '
        f'{escape(_ENTRY_TITLES.get((e["type"], e["actor"]), e["type"].replace("_", " ")))}</div>'
        f'<div class="body">{escape(e["body"] or "")}</div></li>'
        for e in view["timeline"]
    )
    link = base + ticket_link(view["id"], token)
    earlier = (f'<p><a id="earlier" href="{escape(link)}&amp;cursor={quote(view["next"])}">Earlier messages</a></p>'
               if view["next"] else "")
    latest = f'<p><a id="latest" href="{escape(link)}">Latest messages</a></p>' if cursor else ""
    action = base + ticket_link(view["id"], token).replace("?", "/messages?", 1)
    return _page(f"{view['id']}: {view['subject']}", f"""
<h1><span class="ref">{escape(view['id'])}</span> {escape(view['subject'])}</h1>
<dl>
  <dt>Status</dt><dd id="status" data-status="{escape(view['status'])}">{escape(_STATUS_WORDS.get(view['status'], view['status'].replace('_', ' ')))}</dd>
  <dt>Priority</dt><dd>{escape(view['priority'])}</dd>
  <dt>Team</dt><dd>{escape(view['department'])} ({escape(view['tier'])})</dd>
{_clock_rows(view)}
</dl>
<h2>Conversation</h2>{earlier}<ol class="timeline" id="timeline">{entries}</ol>{latest}
<form method="post" action="{escape(action)}" id="message-form">
  <label for="body">Add a message</label><textarea id="body" name="body" required></textarea>
  <button type="submit">Send</button>
</form>""")


def error_page(status: int, message: str, details: list) -> str:
    items = "".join(f"<li>{escape(str(d.get('field', '')))}: {escape(str(d.get('message', '')))}</li>"
                    for d in details if isinstance(d, dict))
    return _page("Something is not right", f"""
<h1>{'We could not find that request' if status == 404 else 'Please check your request'}</h1>
<p class="error">{escape(message)}</p><ul>{items}</ul><p>Use your browser's back button to correct it.</p>""")


def survey_page(view: dict, token: str, base: str) -> str:
    """The satisfaction survey: a form (a GET never records anything, so link scanners cannot vote),
    offered once the ticket is resolved; before that, a page that says so."""
    back = f'<p><a href="{escape(base + ticket_link(view["id"], token))}">Back to your request {escape(view["id"])}</a></p>'
    if view["status"] not in CLOSED:
        return _page(f"{view['id']} is not resolved yet", f"""
<h1>Your request is not resolved yet</h1>
<p id="not-yet">You can rate our help once <span class="ref">{escape(view['id'])}</span> is resolved.</p>{back}""")
    action = base + ticket_link(view["id"], token).replace("?", "/survey?", 1)
    options = "".join(f'<label class="choice"><input type="radio" name="score" value="{n}" required> {n} {label}</label>'
                      for n, label in ((5, "excellent"), (4, "good"), (3, "fair"), (2, "poor"), (1, "very poor")))
    return _page(f"How did we do on {view['id']}?", f"""
<h1>How did we do on <span class="ref">{escape(view['id'])}</span>?</h1>
<p>{escape(view['subject'])}</p>
<form method="post" action="{escape(action)}" id="survey-form">
  <fieldset><legend>Your rating</legend>{options}</fieldset>
  <label for="comment">Anything you want to tell us? (optional)</label><textarea id="comment" name="comment"></textarea>
  <button type="submit">Send rating</button>
</form>""")


def thanks_page(ticket_id: str, token: str, base: str) -> str:
    return _page("Thank you", f"""
<h1>Thank you for your rating</h1>
<p><a href="{escape(base + ticket_link(ticket_id, token))}">Back to your request {escape(ticket_id)}</a></p>""")

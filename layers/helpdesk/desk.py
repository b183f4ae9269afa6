"""The support desk: what an agent sees and does, checked and version-guarded (the agent API's use cases).

Every action:

- may only touch a ticket the agent may see (helpdesk.agents): otherwise NotFound, exactly as for a
  ticket that does not exist;
- may be refused by a rule of its own (Forbidden: a manager's step, the transfer cap);
- applies to the version the agent saw (``If-Match``): a change made on an older version is a Stale
  conflict that says which version is current and what changed since, never a lost update; no
  version at all is PreconditionRequired;
- is one transaction of the ticket and its timeline event(s), the event naming the agent.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from helpdesk import agents, clock, customers, directory, ledger, queue, sla, tickets
from helpdesk.agents import Agent, TransferCapReached
from helpdesk.config import Policy
from helpdesk.errors import InvalidRequest, NotFound, PreconditionRequired, Stale
from helpdesk.models import ACTIVE, PAUSED, PRESENCE_SK_PREFIX, Presence, Ticket, TicketEvent, ticket_pk

CHANGES_SHOWN = 50  # what a stale version is told about, at most
HANDOFF_EVENTS = ("escalated", "transferred", "returned")


# -- who may act, on which version ---------------------------------------------------------------------

def guard(agent: Agent, version: int | None, *rules: Callable[[Ticket], None]) -> ledger.Check:
    """The precondition of an agent's change: they may see the ticket, it is at ``version``, and
    every rule of the action holds (each raises to refuse)."""
    if version is None:
        raise PreconditionRequired("Send If-Match with the ticket's version you acted on (its ETag).")

    def check(ticket: Ticket) -> None:
        agents.require_visible(agent, ticket)
        if ticket.version != version:
            raise Stale(f"{ticket.ticket_id} changed since version {version}: it is at version {ticket.version}. "
                        "Nothing was written; look at the changes and send again.",
                        current_version=ticket.version, changes=changes_since(ticket.ticket_id, version))
        for rule in rules:
            rule(ticket)

    return check


def changes_since(ticket_id: str, version: int) -> list[dict]:
    """The timeline entries written after ``version``, oldest first (at most CHANGES_SHOWN)."""
    newer = []
    for event in TicketEvent.query(ticket_pk(ticket_id), TicketEvent.sk.startswith("EVENT#"),
                                   scan_index_forward=False, limit=CHANGES_SHOWN * 2):
        if event.version is None or event.version <= version:
            if event.version is not None:
                break
            continue  # an entry that changed no version (an at-risk warning): it may sit among newer ones
        newer.append(entry(event))
        if len(newer) == CHANGES_SHOWN:
            break
    return newer[::-1]


# -- what an agent sees ---------------------------------------------------------------------------------

def me(agent: Agent, policy: Policy) -> dict:
    """Who the agent is, and what the console offers them (the departments a ticket can go to)."""
    return {"username": agent.username, "email": agent.email, "name": agent.name, "tier": agent.tier,
            "tiers": sorted(agent.tiers), "departments": sorted(agent.departments), "manager": agent.manager,
            "all_departments": [{"name": d, "private": policy.private(d)} for d in sorted(policy.department_names)],
            "transfer_cap": policy.escalation.transfer_cap}


# -- who else has the ticket open (collision detection) ---------------------------------------------------

PRESENCE_SECONDS = 45  # a console that stops saying so is gone this long after (it says so every 15 s)
PRESENCE_STATES = ("viewing", "typing", "left")


def presence(agent: Agent, ticket_id: str, state: str) -> dict:
    """The agent has the ticket open (``viewing``), is writing on it (``typing``) or closed it (``left``);
    the answer is who else has it open now, so each console shows the others (no version: nothing of
    the ticket changes)."""
    if state not in PRESENCE_STATES:
        raise InvalidRequest(f"state is one of {', '.join(PRESENCE_STATES)}", details=[{"field": "state"}])
    ticket = ledger.load(ticket_id)
    agents.require_visible(agent, ticket)
    now = clock.now()
    mine = Presence(ticket_pk(ticket_id), f"{PRESENCE_SK_PREFIX}{agent.username}", username=agent.username,
                    name=agent.name, state=state, at=now, expires_at=now + timedelta(seconds=PRESENCE_SECONDS))
    if state == "left":
        mine.delete()
    else:
        mine.save()
    fresh = now - timedelta(seconds=PRESENCE_SECONDS)
    others = [p for p in Presence.query(ticket_pk(ticket_id), Presence.sk.startswith(PRESENCE_SK_PREFIX))
              if p.username != agent.username and p.at > fresh]
    return {"others": [{"username": p.username, "name": p.name, "state": p.state, "since": clock.to_iso(p.at)}
                       for p in others]}


def _data(event: TicketEvent) -> dict:
    data = event.data
    return {} if data is None else (data.as_dict() if hasattr(data, "as_dict") else dict(data))


def entry(event: TicketEvent) -> dict:
    """One timeline entry as agents read it (internal entries included, marked ``public: false``)."""
    actor, _, name = event.actor.partition(":")
    return {"id": event.event_id, "type": event.type, "at": clock.to_iso(event.at), "actor": actor,
            "agent": name or None, "public": bool(event.public), "body": event.body, "data": _data(event),
            "version": event.version}


def _handoff(event: TicketEvent) -> dict:
    data = _data(event)
    return {"type": event.type, "at": clock.to_iso(event.at), "by": event.actor.partition(":")[2] or None,
            "auto": bool(data.get("auto")) or event.actor == "system",
            "from_tier": data.get("from_tier"), "to_tier": data.get("to_tier") or data.get("tier"),
            "from_department": data.get("from_department"), "to_department": data.get("to_department"),
            "reason": data.get("reason"), "summary": data.get("summary"), "handoff": data.get("handoff")}


def _clocks(ticket: Ticket, policy: Policy, now: datetime) -> dict:
    running = ledger.running_deadline(ticket) if ticket.status in ACTIVE else None
    waited = sum((clock.from_iso(end) - clock.from_iso(start) for start, end in
                  (p.split("/") for p in ticket.pauses or [])), timedelta(0))
    if ticket.status == PAUSED and ticket.paused_at:
        waited += now - ticket.paused_at
    target = policy.sla[ticket.priority]
    return {
        "priority": ticket.priority,
        "first_response": {"target_seconds": int(target.first_response.total_seconds()),
                           "due_at": clock.to_iso(ticket.first_response_due_at),
                           "met_at": clock.to_iso(ticket.first_responded_at) if ticket.first_responded_at else None},
        "resolution": {"target_seconds": int(target.resolution.total_seconds()),
                       "due_at": clock.to_iso(ticket.resolution_due_at),
                       "resolved_at": clock.to_iso(ticket.resolved_at) if ticket.resolved_at else None},
        "next_deadline": clock.to_iso(running) if running else None,
        "due_kind": ticket.due_kind if running else None,
        "seconds_left": int((running - now).total_seconds()) if running else None,
        "at_risk": bool(running) and sla.at_risk(policy, ticket, now, sla.at_risk_share()),
        "breached": bool(ticket.breached) or bool(running and running < now),
        "paused_since": clock.to_iso(ticket.paused_at) if ticket.status == PAUSED and ticket.paused_at else None,
        "paused_seconds": int(waited.total_seconds()),
        "escalates_to": ticket.escalate_to if running else None,
    }


def _summary(ticket: Ticket) -> dict:
    return {"id": ticket.ticket_id, "subject": ticket.subject, "status": ticket.status, "priority": ticket.priority,
            "department": ticket.department, "tier": ticket.tier, "assignee": ticket.assignee,
            "version": ticket.version, "updated_at": clock.to_iso(ticket.updated_at)}


def timeline(ticket_id: str, *, cursor: str | None = None) -> dict:
    """The ticket's whole timeline for agents (internal entries included): the latest page, oldest
    first within it; ``earlier`` is the cursor of the entries before it."""
    page = tickets.timeline_page(ticket_id, cursor, public_only=False)
    return {"entries": [entry(e) for e in page.events], "earlier": page.earlier}


def ticket_view(agent: Agent, ticket_id: str, policy: Policy, *, cursor: str | None = None,
                now: datetime | None = None) -> dict:
    """The ticket as an agent works it: the customer panel first, then the last hand-off, the ticket,
    its SLA clocks, its escalation history and its timeline (internal notes included)."""
    now = now or clock.now()
    ticket = ledger.load(ticket_id)
    agents.require_visible(agent, ticket)
    handoffs = [_handoff(e) for e in TicketEvent.query(
        ticket_pk(ticket_id), TicketEvent.sk.startswith("EVENT#"),
        filter_condition=TicketEvent.type.is_in(*HANDOFF_EVENTS))]
    return {
        "customer": customers.panel(agent, ticket.customer_email, policy, exclude=ticket_id),
        "handoff": handoffs[-1] if handoffs else None,
        "ticket": {
            **_summary(ticket), "channel": ticket.channel, "category": ticket.category,
            "description": ticket.description, "customer_name": ticket.customer_name,
            "customer_email": ticket.customer_email, "created_at": clock.to_iso(ticket.created_at),
            "transfer_count": int(ticket.transfer_count or 0), "transfer_cap": policy.escalation.transfer_cap,
            "escalation_count": int(ticket.escalation_count or 0), "merged_into": ticket.merged_into,
            "related_ticket_id": ticket.related_ticket_id, "attachments": list(ticket.attachments or []),
            "private": policy.private(ticket.department),
        },
        "sla": _clocks(ticket, policy, now),
        "escalations": handoffs,
        "timeline": timeline(ticket_id, cursor=cursor),
    }


def queue_page(agent: Agent, policy: Policy, filters: queue.Filters, *, limit: int = queue.PAGE_DEFAULT,
               cursor: str | None = None) -> dict:
    page = queue.page(agent, policy, filters, limit=limit, cursor=cursor)
    return {"rows": [vars(row) for row in page.rows], "cursor": page.cursor, "queues": page.queues}


def queue_counts(agent: Agent, policy: Policy, filters: queue.Filters) -> dict:
    counts, queues = queue.counts(agent, policy, filters)
    return {"counts": counts, "queues": queues}


def assignees(agent: Agent, ticket_id: str, policy: Policy) -> list[dict]:
    """Who the ticket can be assigned to (the assign picker)."""
    ticket = ledger.load(ticket_id)
    agents.require_visible(agent, ticket)
    return [{"username": a.username, "name": a.name, "tier": a.tier}
            for a in directory.who_may_work(ticket.department, ticket.tier, policy)]


# -- what an agent does -----------------------------------------------------------------------------------

def _done(ticket: Ticket, event: TicketEvent, **extra) -> dict:
    return {"ticket": _summary(ticket), "event": entry(event), **extra}


def assign(agent: Agent, ticket_id: str, version: int | None, assignee: str | None, policy: Policy) -> dict:
    """To me (``"me"``), to a colleague who may work the ticket, or to nobody (None)."""
    username = agent.username if assignee == "me" else assignee
    colleague = None if username in (None, agent.username) else directory.agent(username, policy)

    def may_work(ticket: Ticket) -> None:
        if username is not None and username != agent.username and (
                colleague is None or not agents.visible(colleague, ticket.department, ticket.tier)):
            raise InvalidRequest(f"{username} cannot work this ticket (no such agent, or not of its department "
                                 "and tier)", details=[{"field": "assignee"}])

    ticket, event = tickets.assign(ticket_id, agent.username, username, check=guard(agent, version, may_work))
    return _done(ticket, event)


def reply(agent: Agent, ticket_id: str, version: int | None, body: str, policy: Policy, *,
          then: str | None = None) -> dict:
    ticket, event = tickets.reply(ticket_id, agent.username, body, policy=policy, then=then,
                                  check=guard(agent, version))
    return _done(ticket, event)


def note(agent: Agent, ticket_id: str, version: int | None, body: str, policy: Policy) -> dict:
    """An internal note; ``@name`` alerts each named colleague who may see the ticket."""
    names = tickets.mentioned(body)
    found = [a for a in (directory.agent(n, policy) for n in names[:10]) if a is not None]
    target = ledger.load(ticket_id)
    agents.require_visible(agent, target)
    alerted = [a for a in found if agents.visible(a, target.department, target.tier) and a.username != agent.username]
    ticket, event = tickets.add_note(
        ticket_id, agent.username, body, check=guard(agent, version),
        mentions=tuple({"username": a.username, "email": a.email} for a in alerted if a.email))
    known = {a.username for a in alerted}
    return _done(ticket, event, mentioned=sorted(known),
                 not_alerted=[n for n in names if n not in known and n != agent.username])


def escalate(agent: Agent, ticket_id: str, version: int | None, handoff: tickets.Handoff, policy: Policy, *,
             to_department: str | None = None) -> dict:
    """To the next tier, or (``to_department``) to another department: past the policy's transfer cap
    only a manager can transfer the ticket again."""
    def under_cap(ticket: Ticket) -> None:
        cap = policy.escalation.transfer_cap
        if to_department is not None and (ticket.transfer_count or 0) >= cap and not agent.manager:
            raise TransferCapReached(
                f"{ticket.ticket_id} has been transferred {ticket.transfer_count} times (the cap is {cap}): "
                "only a manager can transfer it again. Escalate it, or ask a manager.")

    ticket, event = tickets.escalate(ticket_id, agent.username, handoff, to_department, policy=policy,
                                     check=guard(agent, version, under_cap))
    return _done(ticket, event)


def wait(agent: Agent, ticket_id: str, version: int | None) -> dict:
    return _done(*tickets.pause(ticket_id, agent.username, check=guard(agent, version)))


def resume(agent: Agent, ticket_id: str, version: int | None, policy: Policy) -> dict:
    return _done(*tickets.resume(ticket_id, agent.username, policy, check=guard(agent, version)))


def change_priority(agent: Agent, ticket_id: str, version: int | None, priority: str, reason: str,
                    policy: Policy) -> dict:
    reason = (reason or "").strip()
    if not reason:
        raise InvalidRequest("a reason for the new priority is required", details=[{"field": "reason"}])
    return _done(*tickets.change_priority(ticket_id, agent.username, priority, policy, reason=reason,
                                          check=guard(agent, version)))


def resolve(agent: Agent, ticket_id: str, version: int | None, note_text: str, policy: Policy) -> dict:
    return _done(*tickets.resolve(ticket_id, agent.username, note_text, policy, check=guard(agent, version)))


def reopen(agent: Agent, ticket_id: str, version: int | None, reason: str, policy: Policy) -> dict:
    return _done(*tickets.reopen(ticket_id, agent.username, reason, policy, check=guard(agent, version)))


def merge(agent: Agent, ticket_id: str, version: int | None, into: str, note_text: str | None) -> dict:
    """Close the ticket as a duplicate of ``into``, which the agent must see too (any version)."""
    def target_visible(target: Ticket) -> None:
        if not agents.visible(agent, target.department, target.tier):
            raise NotFound(f"ticket {target.ticket_id} not found")

    ticket, event = tickets.merge(ticket_id, agent.username, into, note_text, check=guard(agent, version),
                                  check_target=target_visible)
    return _done(ticket, event)


def return_to_tier(agent: Agent, ticket_id: str, version: int | None, tier: str, note_text: str,
                   policy: Policy) -> dict:
    """A manager hands a ticket with management back to a tier, with a note for it."""
    def manager(ticket: Ticket) -> None:
        agents.require_manager(agent, "return a ticket from management to a tier")

    return _done(*tickets.return_to_tier(ticket_id, agent.username, tier, note_text, policy,
                                         check=guard(agent, version, manager)))

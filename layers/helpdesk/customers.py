"""Customers as the support desk knows them: their value, a manager's notes, their earlier tickets.

The panel comes first on every ticket an agent opens: an agent sees who they are talking to (a VIP?
what is this customer worth to us? how did their last requests go?) before offering anything. The
value tier is the one routing uses too: a customer a manager marked VIP is routed as the policy's
VIP addresses are.
"""

from __future__ import annotations

from pynamodb.exceptions import PutError

from helpdesk import agents, clock, routing
from helpdesk.agents import Agent
from helpdesk.config import Policy
from helpdesk.errors import InvalidRequest, Stale
from helpdesk.models import CLOSED, CUSTOMERS_PK, Customer, Ticket

VALUE_TIERS = ("standard", "vip")
NOTES_MAX = 5_000
HISTORY = 20  # earlier tickets shown on the panel, newest first


def _profile(email: str) -> Customer | None:
    try:
        return Customer.get(CUSTOMERS_PK, email.strip().lower())
    except Customer.DoesNotExist:
        return None


def value_tier(email: str, policy: Policy, profile: Customer | None = None) -> str:
    """``vip`` if a manager said so, or the policy lists the address or its domain; else ``standard``."""
    profile = profile if profile is not None else _profile(email)
    if profile is not None and profile.value_tier in VALUE_TIERS:
        return profile.value_tier
    return routing.customer_tier(policy, email)


def profile_view(email: str, policy: Policy, profile: Customer | None = None) -> dict:
    profile = profile if profile is not None else _profile(email)
    return {
        "email": email.strip().lower(),
        "value_tier": value_tier(email, policy, profile),
        "value_tier_source": "manager" if profile is not None else "policy",
        "lifetime_value": profile.lifetime_value if profile else None,
        "currency": policy.customers.currency,
        "notes": profile.notes if profile else None,
        "updated_at": clock.to_iso(profile.updated_at) if profile else None,
        "updated_by": profile.updated_by if profile else None,
        "version": profile.version if profile else 0,
    }


def set_profile(agent: Agent, email: str, policy: Policy, *, value_tier: str, lifetime_value: float | None,
                notes: str | None, expected_version: int | None = None) -> dict:
    """A manager records what the customer is worth and what to know about them. ``expected_version``
    (If-Match; 0 for a customer without a record yet) makes a concurrent edit a Conflict, not a loss."""
    agents.require_manager(agent, "set a customer's value and notes")
    if value_tier not in VALUE_TIERS:
        raise InvalidRequest(f"value_tier is one of {', '.join(VALUE_TIERS)}", details=[{"field": "value_tier"}])
    if lifetime_value is not None and lifetime_value < 0:
        raise InvalidRequest("lifetime_value cannot be negative", details=[{"field": "lifetime_value"}])
    if notes is not None and len(notes) > NOTES_MAX:
        raise InvalidRequest(f"notes are longer than {NOTES_MAX} characters", details=[{"field": "notes"}])
    profile = _profile(email) or Customer(CUSTOMERS_PK, email.strip().lower(), email=email.strip().lower())
    current = profile.version or 0
    if expected_version is not None and expected_version != current:
        raise Stale("the customer's record changed since you read it", current_version=current, changes=[])
    profile.value_tier, profile.lifetime_value, profile.notes = value_tier, lifetime_value, (notes or None)
    profile.updated_at, profile.updated_by = clock.now(), agent.username
    try:
        profile.save()  # version-checked by PynamoDB
    except PutError as error:
        if error.cause_response_code == "ConditionalCheckFailedException":
            raise Stale("the customer's record changed meanwhile", current_version=current + 1, changes=[]) from None
        raise
    return profile_view(email, policy)


def records(agent: Agent, policy: Policy, *, cursor: str | None = None, limit: int = 50) -> dict:
    """Managers: every customer record, by address, a page at a time (one Query of their partition)."""
    agents.require_manager(agent, "list the customer records")
    start = {"pk": {"S": CUSTOMERS_PK}, "sk": {"S": cursor}} if cursor else None
    page = list(Customer.query(CUSTOMERS_PK, limit=limit, last_evaluated_key=start))
    return {"customers": [profile_view(p.email, policy, p) for p in page],
            "cursor": page[-1].email if len(page) == limit else None}


def history(agent: Agent, email: str, policy: Policy, *, exclude: str | None = None) -> list[dict]:
    """The customer's tickets, newest first, with their outcome and rating. A private department's
    tickets are left out unless the agent may see them; the others are listed (``can_open`` says
    whether the agent may open them)."""
    out = []
    for ticket in Ticket.customer_index.query(email.strip().lower(), scan_index_forward=False, limit=HISTORY + 1):
        if ticket.ticket_id == exclude:
            continue
        can_open = agents.visible(agent, ticket.department, ticket.tier)
        if policy.private(ticket.department) and not can_open:
            continue
        out.append({
            "id": ticket.ticket_id, "subject": ticket.subject, "status": ticket.status,
            "outcome": _outcome(ticket), "department": ticket.department, "priority": ticket.priority,
            "opened_at": clock.to_iso(ticket.created_at),
            "resolved_at": clock.to_iso(ticket.resolved_at) if ticket.resolved_at else None,
            "csat": ticket.csat_score, "breached": bool(ticket.breached), "can_open": can_open,
        })
    return out[:HISTORY]


def _outcome(ticket: Ticket) -> str:
    if ticket.merged_into:
        return f"merged into {ticket.merged_into}"
    if ticket.status in CLOSED:
        return "resolved late" if ticket.breached else "resolved"
    return "open"


def panel(agent: Agent, email: str, policy: Policy, *, exclude: str | None = None) -> dict:
    """What an agent sees first about the customer: value, notes, earlier tickets."""
    return {**profile_view(email, policy), "tickets": history(agent, email, policy, exclude=exclude)}

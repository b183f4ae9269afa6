"""Who an agent is, and what they may see and do.

Agents sign in to the Cognito user pool. API Gateway's Cognito authorizer verifies their ID token
and hands the function its claims (``requestContext.authorizer.claims``: every value a string, the
groups comma-separated); on the local stack the API front does the same against moto's pool. The
groups say everything about an agent:

- a tier: ``L1``, ``L2``, ``L3`` (the highest counts), or ``managers``;
- departments: one group per department of the routing policy (``billing``, ``technical``...).

An agent sees and acts on the tickets of their departments at or below their tier; managers see and
act on everything, tickets with management included. A private department's tickets are seen only
by its own group and managers. :func:`visible` and :func:`check` are the one answer to "may this agent
do this to this ticket", used by every agent route and by the queue. A ticket an agent may not see
is NotFound, exactly like one that does not exist; an action outside their rights is Forbidden.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from helpdesk.config import ESCALATION_LADDER, Policy
from helpdesk.errors import DomainError, Forbidden, NotFound

TIERS = ESCALATION_LADDER[:-1]  # L1, L2, L3: the agents' tier groups
MANAGERS = "managers"  # the managers' group: every queue, management's tickets, customer records
MANAGEMENT = ESCALATION_LADDER[-1]
_RANK = {tier: n for n, tier in enumerate(ESCALATION_LADDER, start=1)}


@dataclass(frozen=True)
class Group:
    name: str
    description: str


def groups(policy: Policy) -> list[Group]:
    """Every group of the user pool: the tiers, managers, and one per department of the policy (the
    one source: CDK creates these, the local stack too, and a synth test checks them)."""
    return [
        *(Group(tier, f"Tier {tier[1]} agents: tickets of their departments at or below {tier}") for tier in TIERS),
        Group(MANAGERS, "Support managers: every queue, tickets with management, customer records"),
        *(Group(department, f"The {department} department" + (" (private)" if policy.private(department) else ""))
          for department in sorted(policy.department_names)),
    ]


class Unauthenticated(DomainError):
    """No agent identity on the request (no authorizer claims, or claims that name nobody)."""

    code = "unauthorized"


class TransferCapReached(Forbidden):
    code = "transfer_cap"


def group_names(value: object) -> list[str]:
    """The groups claim as API Gateway hands it over: ``"L1,billing"`` (REST API authorizer), also
    ``"[L1 billing]"`` (HTTP API) or a JSON list (a raw token)."""
    if isinstance(value, list | tuple):
        return [str(v) for v in value if str(v)]
    text = str(value or "").strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    return [part for part in re.split(r"[,\s]+", text) if part]


@dataclass(frozen=True)
class Agent:
    username: str  # cognito:username: what timeline events, assignments and @mentions name
    email: str | None = None
    name: str | None = None
    tiers: frozenset[str] = frozenset()
    departments: frozenset[str] = frozenset()
    manager: bool = False

    @classmethod
    def from_claims(cls, claims: Mapping[str, object] | None, policy: Policy) -> Agent:
        """The agent an ID token's claims describe; :class:`Unauthenticated` if they describe none."""
        claims = claims or {}
        username = str(claims.get("cognito:username") or "").strip()
        if not username or claims.get("token_use", "id") != "id":
            raise Unauthenticated("Sign in as an agent: this route needs an ID token of the agents' user pool.")
        names = set(group_names(claims.get("cognito:groups")))
        return cls(username=username, email=str(claims.get("email") or "") or None,
                   name=str(claims.get("name") or "") or None,
                   tiers=frozenset(names & set(TIERS)), departments=frozenset(names & policy.department_names),
                   manager=MANAGERS in names)

    @property
    def actor(self) -> str:
        """How timeline events name the agent."""
        return f"agent:{self.username}"

    @property
    def tier(self) -> str | None:
        """The highest tier the agent works at (``management`` for managers); None: no tier group."""
        if self.manager:
            return MANAGEMENT
        return max(self.tiers, key=_RANK.__getitem__, default=None)


def rank(tier: str | None) -> int:
    return _RANK.get(tier or "", 0)


def visible(agent: Agent, department: str, tier: str) -> bool:
    """Whether the agent may see a ticket of ``department`` at ``tier``."""
    if agent.manager:
        return True
    return department in agent.departments and 0 < rank(tier) <= rank(agent.tier)


def require_visible(agent: Agent, ticket) -> None:
    """NotFound (as for a ticket that does not exist) unless the agent may see the ticket."""
    if not visible(agent, ticket.department, ticket.tier):
        raise NotFound(f"ticket {ticket.ticket_id} not found")


def require_manager(agent: Agent, what: str) -> None:
    if not agent.manager:
        raise Forbidden(f"Only a manager can {what}.")

"""Request shapes of the agent API (validated by Powertools' OpenAPI middleware)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from helpdesk.customers import NOTES_MAX, VALUE_TIERS
from helpdesk.tickets import MESSAGE_MAX, SUMMARY_MAX

Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MESSAGE_MAX)]
Reason = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=SUMMARY_MAX)]


def _a_sentence(value: str) -> str:
    if len(value.split()) < 3:
        raise ValueError("write at least a sentence (three words or more)")
    return value


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PresenceRequest(_Request):
    state: Literal["viewing", "typing", "left"]


class AssignRequest(_Request):
    assignee: str | None = Field(..., max_length=128, description='"me", a colleague\'s username, or null to unassign')


class ReplyRequest(_Request):
    body: Text
    then: Literal["wait", "resolve"] | None = Field(None, description="also wait for the customer, or resolve")


class NoteRequest(_Request):
    body: Text = Field(description="internal; @username alerts that colleague by email")


class Handoff(_Request):
    need: Reason = Field(description="what the customer needs")
    tried: Reason = Field(description="what was tried")
    next_step: Reason = Field(description="what the receiving team should do next")

    _sentences = field_validator("need", "tried", "next_step")(_a_sentence)


class EscalateRequest(_Request):
    to: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)] = Field(
        "next", description='"next" (the next tier) or a department (a functional transfer)')
    handoff: Handoff


class PriorityRequest(_Request):
    priority: Literal["low", "normal", "high", "urgent"]
    reason: Reason


class ResolveRequest(_Request):
    note: Text = Field(description="the resolution, as the customer reads it in the resolved email")


class ReopenRequest(_Request):
    reason: Reason


class MergeRequest(_Request):
    into: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=32)]
    note: Annotated[str, StringConstraints(strip_whitespace=True, max_length=SUMMARY_MAX)] | None = None


class ReturnRequest(_Request):
    tier: Literal["L1", "L2", "L3"]
    note: Reason


class CustomerRequest(_Request):
    value_tier: Literal[VALUE_TIERS]  # type: ignore[valid-type]
    lifetime_value: float | None = Field(None, ge=0, le=1e12)
    notes: Annotated[str, StringConstraints(strip_whitespace=True, max_length=NOTES_MAX)] | None = None

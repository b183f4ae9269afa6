"""Request and response shapes of the public API (validated by Powertools' OpenAPI middleware)."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    StringConstraints,
    WithJsonSchema,
    model_validator,
)

from helpdesk import addresses, clock
from helpdesk.config import ZoneName
from helpdesk.tickets import CATEGORIES, DEFAULT_CATEGORY, DESCRIPTION_MAX, MESSAGE_MAX, SUBJECT_MAX

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")  # everything but tab and line breaks
_LINE_BREAK = re.compile(r"[\r\n]")


def _no_control_characters(value: str) -> str:
    if _CONTROL.search(value):
        raise ValueError("must not contain control characters")
    return value


def _single_line(value: str) -> str:
    if _LINE_BREAK.search(value):
        raise ValueError("must be a single line")
    return _no_control_characters(value)


def _deliverable(value: str) -> str:
    try:
        return addresses.deliverable(value)
    except addresses.Undeliverable as error:
        raise ValueError(error.message) from None


def _blank_is_none(value: object) -> object:
    """An optional text left empty (a form's empty field) is no text."""
    return None if isinstance(value, str) and not value.strip() else value


Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1), AfterValidator(_no_control_characters)]
# An address SES can send to (helpdesk.addresses), stored as we send to it: lower case, IDNA domain.
Email = Annotated[str, AfterValidator(_deliverable), Field(json_schema_extra={"format": "email"})]
Line = Annotated[str, StringConstraints(strip_whitespace=True), AfterValidator(_single_line)]


class _Request(BaseModel):
    """A JSON object, or the same fields form-encoded (which Powertools parses as lists of values)."""

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _form_fields(cls, data: object) -> object:
        if isinstance(data, dict):
            return {k: v[0] if isinstance(v, list) and len(v) == 1 else v for k, v in data.items()}
        return data


class NewTicketRequest(_Request):

    name: Annotated[Line, Field(max_length=200)] = ""
    email: Email
    phone: Annotated[str, Field(pattern=r"^\+[1-9][0-9]{6,14}$", description="E.164, for SMS updates")] | None = None
    subject: Annotated[Line, Field(min_length=1, max_length=SUBJECT_MAX)]
    description: Annotated[Text, Field(max_length=DESCRIPTION_MAX)]
    category: Literal[CATEGORIES] = DEFAULT_CATEGORY  # type: ignore[valid-type]
    # Empty when the form's script did not run: the team's zone then.
    time_zone: Annotated[ZoneName | None, BeforeValidator(_blank_is_none)] = Field(None, max_length=64, description=(
        "The customer's IANA time zone (the form's script fills it in): the times they are shown use it"))
    idempotency_key: str | None = Field(None, max_length=255, exclude=True, description=(
        "The Idempotency-Key of a client that cannot send headers (the HTML form's hidden field)"))


class NewMessageRequest(_Request):
    body: Annotated[Text, Field(max_length=MESSAGE_MAX)]


class SurveyRequest(_Request):
    score: Annotated[int, Field(ge=1, le=5, description="1 (poor) to 5 (excellent)")]
    comment: Annotated[Annotated[Text, Field(max_length=MESSAGE_MAX)] | None, BeforeValidator(_blank_is_none)] = None


# Every time the API answers is UTC ISO 8601 ending in Z, whole seconds (``clock.to_iso``): whatever a
# route hands over (a datetime, or a string in another offset) is written in that one form.
Timestamp = Annotated[datetime, PlainSerializer(clock.to_iso, return_type=str),
                      WithJsonSchema({"type": "string", "format": "date-time", "examples": ["2026-11-24T16:00:00Z"]})]


class Links(BaseModel):
    self: str


class TicketCreated(BaseModel):
    id: str = Field(examples=["HD-7KQ2M9"])
    access_token: str = Field(description="Shown once: keep it to follow the ticket")
    status: str
    priority: str
    department: str
    tier: str
    first_response_due_at: Timestamp
    resolution_due_at: Timestamp
    links: Links


class TimelineEntry(BaseModel):
    type: str
    at: Timestamp
    actor: str
    body: str | None = None


class MessageAdded(BaseModel):
    type: str = Field(examples=["message"])
    at: Timestamp


class Rated(BaseModel):
    score: int


class TicketView(BaseModel):
    id: str
    subject: str
    status: str
    priority: str
    department: str
    tier: str
    category: str
    created_at: Timestamp
    updated_at: Timestamp
    first_response_due_at: Timestamp
    resolution_due_at: Timestamp
    first_responded_at: Timestamp | None = None
    time_zone: str | None = Field(None, description="The customer's time zone, if they gave one (else the team's is used)")
    timeline: list[TimelineEntry] = Field(description=(
        "One page of the public timeline, oldest first: the latest entries, or those before `cursor`. A page "
        "holds at most 50 entries and 200,000 characters of text"))
    next: str | None = Field(None, description=(
        "Pass it as `cursor` for the page of entries before these; null when this page starts the timeline"))


class ErrorBody(BaseModel):
    error: str = Field(examples=["validation_failed"])
    message: str
    details: list = []

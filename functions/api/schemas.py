"""Request and response shapes of the public API (validated by Powertools' OpenAPI middleware)."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints, model_validator

from helpdesk import addresses
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
    phone: Annotated[str, Field(pattern=r"^\+[1-9]\d{6,14}$", description="E.164, for SMS updates")] | None = None
    subject: Annotated[Line, Field(min_length=1, max_length=SUBJECT_MAX)]
    description: Annotated[Text, Field(max_length=DESCRIPTION_MAX)]
    category: Literal[CATEGORIES] = DEFAULT_CATEGORY  # type: ignore[valid-type]
    # Empty when the form's script did not run: the team's zone then.
    time_zone: Annotated[ZoneName | None, BeforeValidator(lambda v: v or None)] = Field(None, max_length=64, description=(
        "The customer's IANA time zone (the form's script fills it in): the times they are shown use it"))
    idempotency_key: str | None = Field(None, max_length=255, exclude=True, description=(
        "The Idempotency-Key of a client that cannot send headers (the HTML form's hidden field)"))


class NewMessageRequest(_Request):
    body: Annotated[Text, Field(max_length=MESSAGE_MAX)]


class SurveyRequest(_Request):
    score: Annotated[int, Field(ge=1, le=5, description="1 (poor) to 5 (excellent)")]
    comment: Annotated[Text, Field(max_length=MESSAGE_MAX)] | None = None


class Links(BaseModel):
    self: str


class TicketCreated(BaseModel):
    id: str = Field(examples=["HD-7KQ2M9"])
    access_token: str = Field(description="Shown once: keep it to follow the ticket")
    status: str
    priority: str
    department: str
    tier: str
    first_response_due_at: str
    resolution_due_at: str
    links: Links


class TimelineEntry(BaseModel):
    type: str
    at: str
    actor: str
    body: str | None = None


class TicketView(BaseModel):
    id: str
    subject: str
    status: str
    priority: str
    department: str
    tier: str
    category: str
    created_at: str
    updated_at: str
    first_response_due_at: str
    resolution_due_at: str
    first_responded_at: str | None = None
    time_zone: str | None = Field(None, description="The customer's time zone, if they gave one (else the team's is used)")
    timeline: list[TimelineEntry]


class ErrorBody(BaseModel):
    error: str = Field(examples=["validation_failed"])
    message: str
    details: list = []

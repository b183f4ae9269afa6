"""Load and validate the reviewed policy file (routing rules, SLA policies, calendars).

An invalid file fails at start with a :class:`~helpdesk.errors.ConfigError` naming the bad entry,
e.g. ``routing.2.set.priority: Input should be 'low', 'normal', 'high' or 'urgent'``.
"""

from __future__ import annotations

import functools
import re
from datetime import date, time, timedelta
from pathlib import Path
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from helpdesk import settings
from helpdesk.errors import ConfigError

DEFAULT_POLICY_FILE = Path(__file__).with_name("policy.toml")

Priority = Literal["low", "normal", "high", "urgent"]
Tier = Literal["L1", "L2", "L3"]
ESCALATION_LADDER = ("L1", "L2", "L3", "management")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_DURATION = re.compile(r"^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")


def parse_duration(text: str) -> timedelta:
    match = _DURATION.match(text.strip())
    if not text.strip() or not match:
        raise ValueError(f"{text!r} is not a duration like '45m', '4h' or '1h30m'")
    hours, minutes, seconds = (int(g or 0) for g in match.groups())
    return timedelta(hours=hours, minutes=minutes, seconds=seconds)


def _known_zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a folder of zones ("America")
        raise ValueError(f"unknown time zone {value!r}") from None
    return value


ZoneName = Annotated[str, AfterValidator(_known_zone)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Calendar(_Strict):
    timezone: ZoneName
    always_open: bool = False
    hours: dict[str, tuple[time, time]] = Field(default_factory=dict)
    holidays: frozenset[date] = frozenset()

    @field_validator("hours")
    @classmethod
    def _weekdays(cls, value: dict[str, tuple[time, time]]) -> dict[str, tuple[time, time]]:
        for day, (start, end) in value.items():
            if day not in WEEKDAYS:
                raise ValueError(f"{day!r} is not one of {', '.join(WEEKDAYS)}")
            if start >= end:
                raise ValueError(f"{day}: opening {start} is not before closing {end}")
        return value

    @model_validator(mode="after")
    def _opens_sometime(self) -> Calendar:
        if not self.always_open and not self.hours:
            raise ValueError("a calendar needs working hours or always_open = true")
        return self

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


class SlaPolicy(_Strict):
    calendar: str
    first_response: timedelta
    resolution: timedelta
    tier_window: timedelta

    @field_validator("first_response", "resolution", "tier_window", mode="before")
    @classmethod
    def _duration(cls, value: object) -> object:
        return parse_duration(value) if isinstance(value, str) else value

    @model_validator(mode="after")
    def _positive(self) -> SlaPolicy:
        if min(self.first_response, self.resolution, self.tier_window) <= timedelta(0):
            raise ValueError("durations must be positive")
        if self.resolution < self.first_response:
            raise ValueError("resolution target is earlier than the first-response target")
        return self


class Route(_Strict):
    department: str
    priority: Priority
    tier: Tier


class RoutingRule(_Strict):
    name: str
    channel: frozenset[str] | None = None
    category: frozenset[str] | None = None
    customer_tier: frozenset[str] | None = None
    keywords: tuple[str, ...] | None = None
    set: Route

    @field_validator("channel", "category", "customer_tier", mode="before")
    @classmethod
    def _one_or_many(cls, value: object) -> object:
        return [value] if isinstance(value, str) else value

    @property
    def matches_everything(self) -> bool:
        return not (self.channel or self.category or self.customer_tier or self.keywords)


class Customers(_Strict):
    vip: tuple[str, ...] = ()
    currency: str = Field("EUR", pattern=r"^[A-Z]{3}$")  # of a customer's lifetime value (ISO 4217)


class Department(_Strict):
    """What the policy says about one department beyond routing to it."""

    # Private: its tickets are seen only by its own group and managers (never in another agent's
    # customer panel), and its team alerts carry no customer text, only the reference and a link.
    private: bool = False


class Escalation(_Strict):
    # Functional transfers (to another department) an agent may make on one ticket; past it only a
    # manager can transfer it again.
    transfer_cap: int = Field(3, ge=0)


class Category(_Strict):
    name: Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]{0,31}$")]
    keywords: tuple[Annotated[str, Field(min_length=1)], ...] = ()


class Policy(_Strict):
    time_zone: ZoneName = "UTC"
    calendars: dict[str, Calendar]
    sla: dict[Priority, SlaPolicy]
    customers: Customers = Customers()
    departments: dict[str, Department] = Field(default_factory=dict)
    escalation: Escalation = Escalation()
    categories: tuple[Category, ...]
    routing: tuple[RoutingRule, ...]

    @property
    def category_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.categories)

    @property
    def default_category(self) -> str:
        """What a request is when nothing says otherwise (the last category, which has no keywords)."""
        return self.categories[-1].name

    @model_validator(mode="before")
    @classmethod
    def _implied_categories(cls, data: object) -> object:
        """A policy written before categories were listed: those its rules name, then ``general``."""
        if not isinstance(data, dict) or "categories" in data:
            return data
        named = []
        for rule in data.get("routing") or ():
            value = rule.get("category") if isinstance(rule, dict) else None
            named += [value] if isinstance(value, str) else list(value or ())
        names = [n for n in dict.fromkeys(named) if n != "general"] + ["general"]
        return {**data, "categories": [{"name": n} for n in names]}

    @model_validator(mode="after")
    def _consistent(self) -> Policy:
        names = self.category_names
        if not names or self.categories[-1].keywords:
            raise ValueError("categories: the last category must have no keywords (it takes the rest)")
        if len(set(names)) != len(names):
            raise ValueError("categories: a category is named twice")
        for i, rule in enumerate(self.routing):
            for unknown in sorted((rule.category or set()) - set(names)):
                raise ValueError(f'routing[{i}] "{rule.name}".category: unknown category {unknown!r} '
                                 f"(categories: {', '.join(names)})")
        missing = {"low", "normal", "high", "urgent"} - set(self.sla)
        if missing:
            raise ValueError(f"sla: no policy for priority {', '.join(sorted(missing))}")
        for priority, sla in self.sla.items():
            if sla.calendar not in self.calendars:
                raise ValueError(f"sla.{priority}.calendar: no calendar named {sla.calendar!r}")
        if not self.routing or not self.routing[-1].matches_everything:
            raise ValueError("routing: the last rule must match everything (a default route)")
        unrouted = set(self.departments) - self.department_names
        if unrouted:
            raise ValueError(f"departments: no routing rule sends tickets to {', '.join(sorted(unrouted))}")
        return self

    @property
    def department_names(self) -> frozenset[str]:
        """The departments tickets can be routed or transferred to: those the routing rules name."""
        return frozenset(rule.set.department for rule in self.routing)

    def private(self, department: str) -> bool:
        return self.departments.get(department, Department()).private

    def compressed(self, scale: float) -> Policy:
        """The same policy with every duration divided by ``scale`` and every calendar open 24/7.

        ``HELPDESK_TIME_SCALE=3600`` turns an hour of SLA into a second on the local stack, and
        tests compress policies the same way instead of sleeping; business hours would stall the
        compressed clock for hours of real time, so they are dropped.
        """
        if scale == 1:
            return self
        open_always = {name: Calendar(timezone=c.timezone, always_open=True) for name, c in self.calendars.items()}
        slas = {
            p: s.model_copy(
                update={
                    "first_response": s.first_response / scale,
                    "resolution": s.resolution / scale,
                    "tier_window": s.tier_window / scale,
                }
            )
            for p, s in self.sla.items()
        }
        return self.model_copy(update={"calendars": open_always, "sla": slas})


def parse_policy(text: str, source: str = "policy") -> Policy:
    import tomllib  # here, not at import: compiling its patterns is ~12 ms of every cold start

    try:
        return Policy.model_validate(tomllib.loads(text))
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{source}: not valid TOML: {error}") from None
    except ValidationError as error:
        raw = tomllib.loads(text)
        problems = "; ".join(f"{_where(raw, e['loc'])}: {e['msg']}" for e in error.errors())
        raise ConfigError(f"{source}: {problems}") from None


def _where(raw: dict, loc: tuple) -> str:
    """``routing[2] "billing-dispute".set.priority``: a rule is named by its position and name."""
    if len(loc) >= 2 and loc[0] == "routing" and isinstance(loc[1], int):
        rules = raw.get("routing") or []
        name = rules[loc[1]].get("name", "?") if loc[1] < len(rules) else "?"
        return ".".join([f'routing[{loc[1]}] "{name}"', *map(str, loc[2:])])
    return ".".join(map(str, loc)) or "(top)"


@functools.cache
def policy_as_written() -> Policy:
    """The reviewed file (or ``HELPDESK_POLICY_FILE``) as it is written: for what compression does
    not touch (the categories the API offers, read at import)."""
    path = Path(settings.get(settings.Env.POLICY_FILE) or DEFAULT_POLICY_FILE)
    return parse_policy(path.read_text(), source=str(path.name))


@functools.cache
def load_policy() -> Policy:
    """The policy in force: :func:`policy_as_written`, compressed by ``HELPDESK_TIME_SCALE``."""
    return policy_as_written().compressed(float(settings.get(settings.Env.TIME_SCALE) or 1))

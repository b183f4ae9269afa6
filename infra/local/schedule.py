"""The schedule ticker: EventBridge's ``rate(5 minutes)`` rule for the SLA sweep, on the local stack.

moto stores schedules but never fires them, so a :class:`~infra.local.services.Poller` invokes
``functions.sla_sweep.handler`` itself with the scheduled event EventBridge sends. The interval is the
deployed 5 minutes compressed by ``HELPDESK_TIME_SCALE`` like the SLA, kept between one second and
:data:`MAX_INTERVAL` seconds: a sweep reads every open ticket whose deadline is near (at real time,
with hours-long windows, that is every open ticket), which moto answers at a cost in proportion to
them, so running it every few seconds would slow the whole stack as tickets accumulate; a minute
is five times as often as deployed, and nothing at real time changes faster.
"""

from __future__ import annotations

import uuid

from helpdesk import clock, settings
from helpdesk.settings import Env
from infra.local.api_gateway import LambdaContext
from infra.local.services import Poller

DEPLOYED_MINUTES = 5
MAX_INTERVAL = 60.0
MIN_INTERVAL = 1.0


def interval() -> float:
    scale = float(settings.get(Env.TIME_SCALE) or 1)
    return max(MIN_INTERVAL, min(MAX_INTERVAL, DEPLOYED_MINUTES * 60 / scale))


def scheduled_event(rule: str = "helpdesk-sla-sweep") -> dict:
    """What an EventBridge scheduled rule sends its target."""
    return {"version": "0", "id": str(uuid.uuid4()), "detail-type": "Scheduled Event", "source": "aws.events",
            "account": "123456789012", "time": clock.to_iso(clock.now()), "region": "us-east-1",
            "resources": [f"arn:aws:events:us-east-1:123456789012:rule/{rule}"], "detail": {}}


def sweep_ticker() -> Poller:
    from functions.sla_sweep import handler  # imported once the resources exist

    def tick() -> None:
        handler.handler(scheduled_event(), LambdaContext("helpdesk-sla-sweep", memory_limit_in_mb=256, timeout_s=120))

    return Poller("sla-sweep-ticker", tick, interval=interval())


__all__ = ["interval", "scheduled_event", "sweep_ticker"]

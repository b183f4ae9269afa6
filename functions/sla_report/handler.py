"""EventBridge schedule (daily) -> yesterday's SLA report (helpdesk.report) -> S3 JSON + EMF metrics.

The JSON lands at ``reports/daily/<day>.json`` in the report bucket; the metrics (dimension
``priority``, and without it for the whole day) feed the dashboard and the breach-rate alarm.
"""

import json
from datetime import date, timedelta

import boto3
from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from helpdesk import clock, report, settings

logger = Logger()
metrics = Metrics()
s3 = boto3.client("s3")
PREFIX = "reports/daily/"


def emit(row: report.Row, **dimensions: str) -> None:
    counts = {"TicketsOpened": row.opened, "SlaBreaches": row.breaches,
              "EscalationsAuto": row.escalations_auto, "EscalationsManual": row.escalations_manual}
    percents = {"FirstResponseSlaMet": row.first_response_met, "ResolutionSlaMet": row.resolution_met,
                "BreachRate": round(100 * row.breaches / row.opened, 1) if row.opened else None}
    scoped = Metrics() if dimensions else metrics  # a dimension set is one EMF blob
    for name, value in dimensions.items():
        scoped.add_dimension(name=name, value=value)
    for name, value in counts.items():
        scoped.add_metric(name=name, unit=MetricUnit.Count, value=value)
    for name, value in percents.items():
        if value is not None:
            scoped.add_metric(name=name, unit=MetricUnit.Percent, value=value)
    if dimensions:
        scoped.flush_metrics()


@metrics.log_metrics
@logger.inject_lambda_context
def handler(event: dict, context) -> dict:
    day = date.fromisoformat(event["day"]) if event.get("day") else clock.now().date() - timedelta(days=1)
    day_facts = report.facts_for(day, day)
    rows = report.aggregate(day_facts)
    by_priority = report.aggregate(day_facts, ("priority",), total=False)
    key = f"{PREFIX}{day.isoformat()}.json"
    body = {"day": day.isoformat(), "generated_at": clock.to_iso(clock.now()),
            "rows": [r.to_dict() for r in rows]}
    s3.put_object(Bucket=settings.get(settings.Env.REPORT_BUCKET), Key=key, ContentType="application/json",
                  Body=json.dumps(body, indent=1).encode())
    total = rows[-1] if rows else None
    if total is not None:
        emit(total)
        for row in by_priority:
            emit(row, priority=row.priority)
    logger.info("report written", extra={"key": key, "rows": len(rows)})
    return {"key": key, "rows": len(rows)}

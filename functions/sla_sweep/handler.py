"""EventBridge schedule (every ``sweepMinutes``) -> one SLA sweep (helpdesk.sweep) -> EMF metrics.

The sweep reads only the sparse due index and acts through conditional writes, so a retried or
overlapping invocation never acts twice.
"""

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from helpdesk import sweep

logger = Logger()
metrics = Metrics()


@metrics.log_metrics
@logger.inject_lambda_context
def handler(event: dict, context) -> dict:
    result = sweep.run()
    for name, value in result.metrics().items():
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)
    summary = {k: v for k, v in vars(result).items() if k != "actions"}
    logger.info("sweep done", extra={"scheduled_at": event.get("time"), **summary})
    return summary

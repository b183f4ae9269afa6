"""Notification fixtures on moto: the table's stream, the two topics with their subscriber queues and
the SES identity, all built by the local stack's own builders (infra/local/resources.py: the filter
policies from helpdesk.notify), and what was sent."""

from __future__ import annotations

import contextlib
import io
import logging
import os
from datetime import UTC, datetime

import pytest

from tests.conftest import sample_event

SUPPORT = "support@helpdesk.local"
BASE_URL = "https://help.example.com"
ACCOUNT = "123456789012"  # moto's default account
REGION = "us-east-1"
TUESDAY = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)  # 10:00 in Berlin: business hours


def sns_event(message: dict) -> dict:
    """A customer-updates queue message (raw delivery) as the SNS event the delivery function gets."""
    event = sample_event("sns/created.json")
    event["Records"][0]["Sns"]["Message"] = message["body"]
    event["Records"][0]["Sns"]["MessageAttributes"] = {
        k: {"Type": "String", "Value": v} for k, v in message["attributes"].items()}
    return event


@contextlib.contextmanager
def captured_logs(logger):
    """What a Powertools ``logger`` writes at INFO inside the block, as its JSON lines."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(logger.registered_formatter)
    level = logger.log_level
    logger.addHandler(handler)
    logger.setLevel("INFO")
    try:
        yield out
    finally:
        logger.setLevel(level)
        logging.getLogger(logger.name).removeHandler(handler)


class Queue:
    """A stand-in subscriber's queue (``infra.local.resources.subscribe_queue``: SNS envelopes)."""

    def __init__(self, name: str):
        from infra.local.pumps import SnsQueue

        self.queue = SnsQueue(name)

    def drain(self) -> list[dict]:
        """Every message waiting: ``{"body": <the SNS message>, "attributes": {name: value}}``, then deleted."""
        from infra.local.pumps import attributes

        out = []
        while page := self.queue.receive():
            for envelope, receipt, _ in page:
                out.append({"body": envelope["Message"], "attributes": attributes(envelope)})
                self.queue.delete(receipt)
        return out


class Notifications:
    """The topics, their subscribers and the table's stream of one moto account, as the local stack
    builds them (``infra.local.resources``): the delivery's queue with ``CUSTOMER_DELIVERY_FILTER``, one
    queue per team-alert subscriber, plus an unfiltered queue on customer-updates for these tests."""

    def __init__(self):
        from helpdesk import models
        from helpdesk.settings import Env
        from infra.local import resources
        from infra.local.pumps import TableStream

        self.customer_topic = os.environ[Env.CUSTOMER_UPDATES_TOPIC_ARN]
        self.team_topic = os.environ[Env.TEAM_ALERTS_TOPIC_ARN]
        self.customer = Queue(resources.DELIVERY_QUEUE)  # stands in for the delivery function
        self.billing = Queue(resources.team_queue_name("billing"))
        self.management = Queue(resources.team_queue_name("management"))
        resources.subscribe_queue(self.customer_topic, "test-customer-updates-unfiltered")
        self.everything = Queue("test-customer-updates-unfiltered")
        self.stream = TableStream(models.Ticket.Meta.table_name)

    @staticmethod
    def sent_emails() -> list:
        from moto.ses.models import ses_backends

        return list(ses_backends[ACCOUNT][REGION].sent_messages)

    @staticmethod
    def sent_sms() -> list[tuple[str, str]]:
        from moto.sns.models import sns_backends

        return list(sns_backends[ACCOUNT][REGION].sms_messages.values())


@pytest.fixture
def notifications(aws, monkeypatch):
    """The notification path as the local stack builds it (``resources.NOTIFICATIONS``: topics, stand-in
    subscriptions, the support domain's SES identity), links pointing at BASE_URL."""
    from helpdesk.settings import Env
    from infra.local import resources

    monkeypatch.setenv(Env.PUBLIC_BASE_URL, BASE_URL)
    # Not in the default account; exported until the `aws` fixture restores the environment.
    created = resources.create_resources(resources.NOTIFICATIONS)
    assert created[Env.SUPPORT_ADDRESS] == SUPPORT
    return Notifications()

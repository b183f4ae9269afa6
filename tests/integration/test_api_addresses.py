"""The web form accepts exactly the addresses we can write to (tests/addresses.py: the same list the
email intake and the outbound builder are tested with)."""

import json

import pytest

from helpdesk import ledger
from tests.addresses import DELIVERABLE, UNDELIVERABLE
from tests.conftest import sample_event
from tests.integration.test_api import call


@pytest.fixture(scope="module")
def api():
    """One moto account for the module: each test looks only at its own request's answer."""
    from functions.api import handler
    from infra.local.aws import local_aws

    with local_aws():
        yield handler


def request(email: str) -> dict:
    return json.loads(sample_event("api/post_ticket_json.json")["body"]) | {"email": email}


@pytest.mark.parametrize(("written", "stored"), DELIVERABLE.items())
def test_an_address_we_can_write_to_opens_a_ticket_stored_as_we_send_to_it(api, lambda_context, written, stored):
    status, _, body = call(api, lambda_context, "post_ticket_json", body=request(written))

    assert status == 201, body
    assert ledger.load(json.loads(body)["id"]).customer_email == stored


@pytest.mark.parametrize("address", UNDELIVERABLE)
def test_an_address_we_cannot_write_to_is_refused_naming_the_field(api, lambda_context, address):
    status, _, body = call(api, lambda_context, "post_ticket_json", body=request(address))

    assert status == 422, body
    answer = json.loads(body)
    assert answer["error"] == "validation_failed"
    assert [d["field"] for d in answer["details"]] == ["email"] and answer["details"][0]["message"]

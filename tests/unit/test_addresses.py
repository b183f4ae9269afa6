"""The addresses we accept are exactly those we can send to (tests/addresses.py, shared by every end)."""

import pytest

from helpdesk.addresses import Undeliverable, deliverable
from tests.addresses import DELIVERABLE, UNDELIVERABLE


@pytest.mark.parametrize(("written", "stored"), DELIVERABLE.items())
def test_a_deliverable_address_is_stored_lower_case_with_its_domain_in_idna_form(written, stored):
    assert deliverable(written) == stored


@pytest.mark.parametrize("address", UNDELIVERABLE)
def test_an_address_ses_cannot_send_to_is_refused_with_a_reason(address):
    with pytest.raises(Undeliverable) as refused:
        deliverable(address)
    assert refused.value.message

"""What reaches the table whatever the channel: text DynamoDB accepts (helpdesk.utf8, in every
model's serialisation), so no write fails for the text a customer sent."""

from __future__ import annotations

from helpdesk import clock, ledger, tickets
from tests.integration.conftest import TUESDAY


def test_text_with_lone_surrogates_is_stored_repaired_on_any_channel(aws):
    # Given a request whose text holds lone surrogates (JSON's "\ud800" escape) and a split pair
    request = tickets.NewTicket(channel="web", customer_email="ann@example.com", customer_name="Ann \udc80",
                                subject="Broken \ud800 invoice", description="A pair \ud83d\ude00 and a \udfff.")

    # When a ticket opens with it
    with clock.frozen(TUESDAY):
        opened = tickets.open_ticket(request)

    # Then it is stored, each lone surrogate replaced and the pair joined, in the ticket and its event
    ticket = ledger.load(opened.ticket.ticket_id)
    assert (ticket.customer_name, ticket.subject) == ("Ann \ufffd", "Broken \ufffd invoice")
    assert ticket.description == "A pair 😀 and a \ufffd."
    [created] = tickets.timeline(ticket.ticket_id)
    assert created.body == "A pair 😀 and a \ufffd."

"""Ordered routing rules: first match wins."""

import pytest

from helpdesk.config import load_policy
from helpdesk.routing import Request, classify, customer_tier, route

POLICY = load_policy()


def request(category="general", subject="Question", description="Hello", tier="standard", channel="web"):
    return Request(channel=channel, category=category, subject=subject, description=description, customer_tier=tier)


@pytest.mark.parametrize(
    ("req", "rule", "department", "priority", "tier"),
    [
        (request("billing", "Refund please", "I was double charged"), "billing-dispute", "billing", "high", "L1"),
        (request("billing", "Invoice address", "Please change it"), "billing", "billing", "normal", "L1"),
        (request("technical", "API question", "How do I paginate?"), "technical", "technical", "normal", "L1"),
        (request("account", "Rename", "New company name"), "account", "accounts", "normal", "L1"),
        (request("general", "Hello", "Just saying thanks"), "default", "support", "low", "L1"),
        # a keyword anywhere wins over the category, and beats VIP (the outage rule comes first)
        (request("billing", "Site is DOWN", "nothing loads", tier="vip"), "outage", "technical", "urgent", "L2"),
        (request("general", "Hi", "quick question", tier="vip"), "vip", "customer-success", "high", "L2"),
    ],
)
def test_the_first_matching_rule_sets_department_priority_and_tier(req, rule, department, priority, tier):
    name, decided = route(POLICY, req)

    assert (name, decided.department, decided.priority, decided.tier) == (rule, department, priority, tier)


def test_keywords_match_whole_words_only():
    name, _ = route(POLICY, request("general", "Downloads folder", "my downstairs neighbour"))

    assert name == "default"


def test_a_multi_word_keyword_matches_as_a_phrase():
    name, decided = route(POLICY, request("account", "Help", "I cannot log in since Monday"))

    assert (name, decided.priority) == ("outage", "urgent")


def test_vip_customers_are_recognised_by_address_or_domain():
    assert customer_tier(POLICY, "Jane@VIP.example.com") == "vip"
    assert customer_tier(POLICY, "jane@example.com") == "standard"


@pytest.mark.parametrize(("subject", "text", "category"), [
    ("Cannot change my invoice address", "Please help.", "billing"),
    ("Question", "I was charged twice.", "billing"),
    ("The export crashes", "Error 0x80070005", "technical"),
    ("Forgot my password", "", "account"),
    ("Login and invoice", "", "billing"),  # several match: the policy's order decides
    ("App problem", "my invoice is wrong", "technical"),  # the subject is read before the text
    ("Thanks!", "Great service.", "general"),  # nothing matches: the last category
    ("Billinghurst office hours", "", "general"),  # whole words only
])
def test_an_email_gets_the_category_its_words_name(subject, text, category):
    assert classify(POLICY, subject, text) == category

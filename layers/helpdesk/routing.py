"""Ordered routing rules: the first rule whose every condition matches decides (pure functions)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from helpdesk.config import Policy, Route, RoutingRule


@dataclass(frozen=True)
class Request:
    """What routing may look at."""

    channel: str
    category: str
    subject: str
    description: str
    customer_tier: str = "standard"


def customer_tier(policy: Policy, email: str) -> str:
    """``vip`` when the address or its ``@domain`` is listed as VIP in the policy."""
    address = email.strip().lower()
    domain = address[address.rfind("@"):]
    vip = {entry.lower() for entry in policy.customers.vip}
    return "vip" if address in vip or domain in vip else "standard"


def mentions(keywords: tuple[str, ...], text: str) -> bool:
    """Whether ``text`` (lower case) holds one of ``keywords`` as a whole word, ignoring case."""
    return any(re.search(rf"(?<!\w){re.escape(k.lower())}(?!\w)", text) for k in keywords)


def classify(policy: Policy, subject: str, text: str) -> str:
    """The category of a request that named none (an email): the first whose keywords the subject
    mentions, else the first the text mentions, else the policy's default."""
    for words in (subject.lower(), text.lower()):
        for category in policy.categories:
            if category.keywords and mentions(category.keywords, words):
                return category.name
    return policy.default_category


def matches(rule: RoutingRule, request: Request) -> bool:
    if rule.channel and request.channel not in rule.channel:
        return False
    if rule.category and request.category not in rule.category:
        return False
    if rule.customer_tier and request.customer_tier not in rule.customer_tier:
        return False
    if rule.keywords and not mentions(rule.keywords, f"{request.subject}\n{request.description}".lower()):
        return False
    return True


def route(policy: Policy, request: Request) -> tuple[str, Route]:
    """The matching rule's name and the route it sets (the last rule always matches)."""
    rule = next(r for r in policy.routing if matches(r, request))
    return rule.name, rule.set

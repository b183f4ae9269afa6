"""The reviewed policy file: loaded and validated at start, a bad entry named in the error."""

from datetime import timedelta

import pytest

from helpdesk.config import DEFAULT_POLICY_FILE, load_policy, parse_duration, parse_policy
from helpdesk.errors import ConfigError

POLICY_TEXT = DEFAULT_POLICY_FILE.read_text()


def test_the_shipped_policy_is_valid_and_covers_every_priority():
    policy = parse_policy(POLICY_TEXT)

    assert set(policy.sla) == {"low", "normal", "high", "urgent"}
    assert policy.routing[-1].matches_everything
    assert policy.calendars[policy.sla["urgent"].calendar].always_open


@pytest.mark.parametrize(
    ("broken", "named"),
    [
        (POLICY_TEXT.replace('priority = "high", tier = "L1"', 'priority = "hgh", tier = "L1"', 1),
         'routing[3] "billing-dispute".set.priority'),
        (POLICY_TEXT.replace('first_response = "2h"', 'first_response = "two hours"'), "sla.high.first_response"),
        (POLICY_TEXT.replace('calendar = "business"', 'calendar = "weekdays"', 1), "sla.high.calendar"),
        (POLICY_TEXT.replace('timezone = "Europe/Berlin"', 'timezone = "Mars/Olympus"'), "calendars.business.timezone"),
        (POLICY_TEXT.replace('mon = ["09:00", "17:00"]', 'mon = ["17:00", "09:00"]'), "calendars.business.hours"),
        (POLICY_TEXT.replace('tier = "L1"', 'tier = "L9"', 1), "set.tier"),
        (POLICY_TEXT + '\n[[routing]]\nname = "after-default"\ncategory = "billing"\n'
         'set = { department = "billing", priority = "low", tier = "L1" }\n', "routing: the last rule must match everything"),
        (POLICY_TEXT.replace("[sla.low]", "[sla.lowest]"), "sla"),
        (POLICY_TEXT.replace('[customers]', '[customers]\nvips = []'), "customers.vips"),
        (POLICY_TEXT.replace("[departments.trust-and-safety]", "[departments.trust-and-saftey]"),
         "departments: no routing rule sends tickets to trust-and-saftey"),
        (POLICY_TEXT.replace("transfer_cap = 3", "transfer_cap = -1"), "escalation.transfer_cap"),
        (POLICY_TEXT.replace('category = "technical"', 'category = "tech"'),
         'routing[5] "technical".category: unknown category \'tech\''),
        (POLICY_TEXT.replace('name = "general"', 'name = "general"\nkeywords = ["hello"]'),
         "categories: the last category must have no keywords"),
        (POLICY_TEXT.replace('name = "account"', 'name = "billing"'), "categories: a category is named twice"),
        (POLICY_TEXT.replace('name = "account"', 'name = "Account Stuff"'), "categories.2.name"),
    ],
)
def test_an_invalid_policy_fails_fast_naming_the_bad_entry(broken, named):
    with pytest.raises(ConfigError, match="policy: ") as failure:
        parse_policy(broken)

    assert named in str(failure.value)


def test_a_file_that_is_not_toml_is_reported_as_such():
    with pytest.raises(ConfigError, match="not valid TOML"):
        parse_policy("routing = [")


def test_durations_read_as_people_write_them():
    assert parse_duration("45m") == timedelta(minutes=45)
    assert parse_duration("1h30m") == timedelta(minutes=90)
    with pytest.raises(ValueError):
        parse_duration("")


def test_a_compressed_policy_shrinks_every_duration_and_opens_every_calendar():
    policy = parse_policy(POLICY_TEXT).compressed(3600)

    assert policy.sla["high"].first_response == timedelta(seconds=2)
    assert all(c.always_open for c in policy.calendars.values())


def test_time_scale_compresses_the_policy_in_force(monkeypatch):
    monkeypatch.setenv("HELPDESK_TIME_SCALE", "3600")
    load_policy.cache_clear()
    try:
        assert load_policy().sla["normal"].first_response == timedelta(seconds=8)
    finally:
        load_policy.cache_clear()


def test_a_policy_without_categories_offers_those_its_rules_name_and_general():
    # Given a policy written before categories were listed
    start = POLICY_TEXT.index("[[categories]]")
    older = POLICY_TEXT[:start] + POLICY_TEXT[POLICY_TEXT.index("# Ordered routing rules"):]

    # Then it still loads, and an email without keywords to go by is general
    assert parse_policy(older).category_names == ("billing", "technical", "account", "general")
    assert parse_policy(older).default_category == "general"

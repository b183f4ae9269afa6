"""The escalation state machine's definition, rendered one way for CDK, the local stack and the tests.

``infra/statemachines/escalation.asl.json`` is the one definition. It names what differs per
deployment with CloudFormation-style placeholders (``${TicketsTable}``...); :func:`render_definition`
fills them exactly as ``DefinitionSubstitutions`` would, and refuses a missing or unknown one, so a
definition that runs under moto is the definition CDK deploys.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path

DEFINITION_FILE = Path(__file__).resolve().parents[2] / "infra" / "statemachines" / "escalation.asl.json"

_PLACEHOLDER = re.compile(r"\$\{([A-Za-z0-9_]+)\}")


class Substitution(StrEnum):
    TICKETS_TABLE = "TicketsTable"  # the ticket table's name


def substitutions(tickets_table: str) -> dict[str, str]:
    """The definition's substitutions (CDK passes the same dict as ``definition_substitutions``)."""
    return {Substitution.TICKETS_TABLE.value: tickets_table}


def placeholders(text: str | None = None) -> set[str]:
    """The ``${Name}`` placeholders the definition uses."""
    return set(_PLACEHOLDER.findall(DEFINITION_FILE.read_text() if text is None else text))


def render_definition(values: Mapping[str, object], text: str | None = None) -> str:
    """The definition with every ``${Name}`` replaced by ``values[Name]``: valid ASL JSON.

    Every placeholder must be given and every given name must be used (CloudFormation fails the
    same way on a placeholder it cannot resolve). Values must be plain text: a value that would
    break out of its JSON string is refused rather than escaped, as Fn::Sub would not escape it.
    """
    text = DEFINITION_FILE.read_text() if text is None else text
    used = placeholders(text)
    missing, unknown = used - set(values), set(values) - used
    if missing or unknown:
        raise ValueError(f"definition substitutions: missing {sorted(missing)}, unknown {sorted(unknown)}")
    for name, value in values.items():
        if re.search(r'["\\\x00-\x1f]', str(value)):
            raise ValueError(f"definition substitution {name}={value!r} is not plain text")
    rendered = _PLACEHOLDER.sub(lambda m: str(values[m.group(1)]), text)
    json.loads(rendered)  # fail here, not at CreateStateMachine
    return rendered

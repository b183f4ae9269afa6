"""The API function's cold start: its import leaves out what only some requests need, and the SnapStart
hooks load exactly that before the snapshot and renew what a restored copy must not share."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ON_FIRST_USE = ("boto3", "aws_lambda_powertools.utilities.idempotency", "tomllib", "email_validator")


def loaded_after(statement: str) -> dict[str, bool]:
    """Which of ON_FIRST_USE a fresh interpreter holds after ``statement``."""
    code = f"import json, sys; {statement}; print(json.dumps({{m: m in sys.modules for m in {ON_FIRST_USE!r}}}))"
    env = os.environ | {"PYTHONPATH": os.pathsep.join([str(ROOT / "layers"), str(ROOT)])}
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


def test_the_import_leaves_out_what_only_keyed_posts_and_the_policy_need_and_the_prime_hook_loads_it():
    imported = loaded_after("import functions.api.handler")
    primed = loaded_after("import functions.api.handler as h; h.prime()")

    # The policy file (tomllib) is read at import: the form's topics in the request schema are its categories.
    assert {m: v for m, v in imported.items() if m in ("boto3", "aws_lambda_powertools.utilities.idempotency")} == {
        "boto3": False, "aws_lambda_powertools.utilities.idempotency": False}
    assert imported["email_validator"] is False  # helpdesk.addresses loads it on the first address it checks
    assert primed == dict.fromkeys(ON_FIRST_USE, True)


def test_a_restored_copy_makes_its_own_clients_and_draws_its_own_random_numbers(aws):
    from functions.api import handler
    from helpdesk import chains, ledger

    # Given clients and the keyed-request persistence made before the snapshot (by init or a hook)
    before = (ledger.connection(), chains.stepfunctions(), handler._open_once())
    state = random.getstate()

    # When Lambda restores a copy of the snapshot
    handler.prime()
    handler.renew()

    # Then the copy makes new ones (new connections, this copy's credentials), and its own random state
    after = (ledger.connection(), chains.stepfunctions(), handler._open_once())
    assert all(a is not b for a, b in zip(before, after, strict=True))
    assert random.getstate() != state


def test_a_keyed_request_after_a_restore_is_still_answered_once(aws, lambda_context):
    from functions.api import handler
    from tests.conftest import sample_event

    event = sample_event("api/post_ticket_json.json")
    event["headers"]["Idempotency-Key"] = "k-restored"
    event["multiValueHeaders"] = {k: [v] for k, v in event["headers"].items()}

    first = handler.handler(event, lambda_context)
    handler.renew()  # a restore between the request and its retry
    again = handler.handler(event, lambda_context)

    assert first["statusCode"] == again["statusCode"] == 201
    assert json.loads(first["body"])["id"] == json.loads(again["body"])["id"]


def test_on_lambdas_runtime_the_handler_registers_both_hooks():
    # Given the runtime's snapshot_restore_py (a stand-in with its two registries; Lambda ships the real one)
    fake = ("import sys, types; m = types.ModuleType('snapshot_restore_py'); m.before, m.after = [], []; "
            "m.register_before_snapshot = lambda f, *a, **k: m.before.append(f.__name__) or f; "
            "m.register_after_restore = lambda f, *a, **k: m.after.append(f.__name__) or f; "
            "sys.modules['snapshot_restore_py'] = m")

    # When the handler is imported (Lambda's init)
    code = f"{fake}; import json, functions.api.handler; print(json.dumps([m.before, m.after]))"
    env = os.environ | {"PYTHONPATH": os.pathsep.join([str(ROOT / "layers"), str(ROOT)])}
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True)

    # Then Lambda will prime before the snapshot and renew after each restore
    assert json.loads(done.stdout) == [["prime"], ["renew"]]

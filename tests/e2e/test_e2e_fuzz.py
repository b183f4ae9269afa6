"""The API against schemathesis (tests/e2e/fuzz.py, ``make fuzz`` for more examples): no 5xx, and
every answer is what /openapi.json documents."""

from tests.e2e.fuzz import fuzz

EXAMPLES = 10


def test_generated_requests_get_only_documented_answers_and_never_a_5xx(local_stack, tmp_path):
    result = fuzz(local_stack.api_url, EXAMPLES, tmp_path / "junit.xml")

    assert result.returncode == 0, result.stdout[-8000:] + result.stderr[-2000:]
    assert "generated" in result.stdout

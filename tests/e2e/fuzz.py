"""Fuzz the API from its own OpenAPI document (schemathesis) through the local stack's API front.

``make fuzz`` (``python -m tests.e2e.fuzz [examples]``) starts a local stack on free ports and runs
every schemathesis phase (examples, coverage, fuzzing, stateful: POST /tickets links to the ticket's
routes) with every check but ``positive_data_acceptance``: a request the schema allows may still be
refused with a documented 4xx for what a JSON schema cannot say (a time zone that does not exist,
control characters, whitespace-only text, a cursor this timeline never gave). Any 5xx, undocumented
status, content type or response shape, or accepted invalid request fails it.
tests/e2e/test_e2e_fuzz.py runs the same with fewer examples in CI.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

CHECKS = ["--checks", "all", "--exclude-checks", "positive_data_acceptance"]


def fuzz(api_url: str, examples: int, report: Path) -> subprocess.CompletedProcess:
    """schemathesis against ``api_url`` (the local front): generation is deterministic, one worker."""
    command = [str(Path(sys.executable).with_name("schemathesis")), "run", api_url + "openapi.json", *CHECKS,
               "--max-examples", str(examples), "--generation-deterministic", "--workers", "1",
               "--request-timeout", "30", "--report", "junit", "--report-junit-path", str(report)]
    # run beside the report: schemathesis and hypothesis keep their example databases in the working folder
    return subprocess.run(command, capture_output=True, text=True, timeout=1800, cwd=report.parent)


def main(examples: int) -> int:
    from tests.e2e.local_stack import running

    with tempfile.TemporaryDirectory() as folder, running(Path(folder) / "stack.log") as stack:
        result = fuzz(stack.api_url, examples, Path(folder) / "junit.xml")
        print(result.stdout[-6000:], result.stderr[-2000:], sep="\n")
    return result.returncode


if __name__ == "__main__":
    sys.exit(main(int(sys.argv[1]) if len(sys.argv) > 1 else 100))

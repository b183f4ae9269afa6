"""Fixtures of the end-to-end tests: one local stack per test module, and moto for in-process tests."""

from __future__ import annotations

import pytest

from tests.e2e.local_stack import running


@pytest.fixture(scope="module")
def local_stack(tmp_path_factory):
    """One local stack for the whole test module."""
    with running(tmp_path_factory.mktemp("local-stack") / "output.log") as stack:
        yield stack

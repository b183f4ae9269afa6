"""Fixtures of the end-to-end tests: one local stack per test module, and moto for in-process tests."""

from __future__ import annotations

import signal

import pytest

from tests.e2e.local_stack import LocalStackProcess, assert_clean_exit


@pytest.fixture(scope="module")
def local_stack(tmp_path_factory):
    """One local stack for the whole test module; stopped with SIGTERM, which must end it cleanly."""
    stack = LocalStackProcess(tmp_path_factory.mktemp("local-stack") / "output.log").start()
    try:
        stack.wait_ready()
        yield stack
        assert_clean_exit(stack, stack.stop(signal.SIGTERM))
    finally:
        stack.kill()

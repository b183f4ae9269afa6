"""Drive the local stack as a user starts it (``python -m infra.local``): on free ports, in a subprocess."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlencode

import pytest

ROOT = Path(__file__).resolve().parents[2]
READY_TIMEOUT_S = 20
STOP_TIMEOUT_S = 10


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def http(method: str, url: str, *, json_body=None, form=None, headers=None, timeout=10):
    """(status, headers, text) of one request; error statuses are answers too, not exceptions."""
    data, headers = None, dict(headers or {})
    if json_body is not None:
        data, headers["Content-Type"] = json.dumps(json_body).encode(), "application/json"
    elif form is not None:
        data, headers["Content-Type"] = urlencode(form).encode(), "application/x-www-form-urlencoded"
    request = urllib.request.Request(url, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, dict(response.headers), response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read().decode()


class LocalStackProcess:
    """``python -m infra.local`` with its output in a file (a pipe nobody reads would block it)."""

    def __init__(self, log_path: Path, *, api_port: int | None = None, console_port: int | None = None,
                 smtp_port: int | None = None, cognito_port: int | None = None, env: dict[str, str] | None = None):
        self.api_port = api_port or free_port()
        self.console_port = console_port or free_port()
        self.smtp_port = smtp_port or free_port()
        self.cognito_port = cognito_port or free_port()
        self.api_url = f"http://127.0.0.1:{self.api_port}/"
        self.console_url = f"http://127.0.0.1:{self.console_port}/"
        self.cognito_url = f"http://127.0.0.1:{self.cognito_port}/"
        self.log_path = log_path
        self.extra_env = env or {}
        self.process: subprocess.Popen | None = None
        self.started_at = 0.0

    def start(self) -> LocalStackProcess:
        env = os.environ | {
            "HELPDESK_PORT": str(self.api_port),
            "HELPDESK_CONSOLE_PORT": str(self.console_port),
            "HELPDESK_SMTP_PORT": str(self.smtp_port),
            "HELPDESK_COGNITO_PORT": str(self.cognito_port),
            "PYTHONPATH": os.pathsep.join([str(ROOT / "layers"), str(ROOT)]),
            "PYTHONUNBUFFERED": "1",
            **self.extra_env,
        }
        self.started_at = time.perf_counter()
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen([sys.executable, "-m", "infra.local"], cwd=ROOT, env=env,
                                            stdout=log, stderr=subprocess.STDOUT)
        return self

    @property
    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_ready(self, timeout: float = READY_TIMEOUT_S) -> float:
        """Seconds from launch until the API answers (the API front is the last service to start)."""
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"the local stack exited with {self.process.returncode}:\n{self.output}")
            try:
                with urllib.request.urlopen(self.api_url + "openapi.json", timeout=1) as response:
                    if response.status == 200:
                        return time.perf_counter() - self.started_at
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.05)
        self.kill()
        pytest.fail(f"the local stack did not answer within {timeout} s:\n{self.output}")

    def stop(self, signum: int = signal.SIGINT) -> int:
        """Signal it, wait for it to end, and return its exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signum)
            try:
                self.process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.kill()
                pytest.fail(f"the local stack ignored signal {signum} for {STOP_TIMEOUT_S} s:\n{self.output}")
        return self.process.returncode

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def assert_clean_exit(stack: LocalStackProcess, code: int) -> None:
    assert code == 0, stack.output


@contextlib.contextmanager
def running(log_path: Path, **env: str) -> Iterator[LocalStackProcess]:
    """A ready local stack (``env`` added to its environment); stopped with SIGTERM, which must end it cleanly."""
    stack = LocalStackProcess(log_path, env=env).start()
    try:
        stack.wait_ready()
        yield stack
        assert_clean_exit(stack, stack.stop(signal.SIGTERM))
    finally:
        stack.kill()
    assert "Traceback" not in stack.output, stack.output
    assert stack.output.rstrip().endswith("Stopped."), stack.output

"""Drive the local stack as a user starts it (``python -m infra.local``): on free ports, in a subprocess."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import smtplib
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path
from urllib.parse import urlencode

import pytest

from infra.local.testing import wait_for

ROOT = Path(__file__).resolve().parents[2]
SUPPORT = "support@helpdesk.local"  # the local stack's default support address
READY_TIMEOUT_S = 60  # generous: the machine may be busy; the wait ends when the API answers
STOP_TIMEOUT_S = 30  # stopping takes a few seconds whatever the stack holds; this is the failure line


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


@contextlib.contextmanager
def in_process(**env: str) -> Iterator[object]:
    """The local stack in this process (``infra.local.stack.LocalStack``) on free ports, with ``env`` added
    to the environment (``HELPDESK_TIME_SCALE``...); the environment and the policy cache restored after."""
    saved = dict(os.environ)
    os.environ.update(HELPDESK_PORT="0", HELPDESK_CONSOLE_PORT="0", HELPDESK_SMTP_PORT="0",
                      HELPDESK_COGNITO_PORT="0", POWERTOOLS_LOG_LEVEL="ERROR", **env)
    from helpdesk.config import load_policy
    from infra.local.config import prepare_environment
    from infra.local.stack import LocalStack

    prepare_environment()
    load_policy.cache_clear()  # compressed by HELPDESK_TIME_SCALE from now on
    stack = LocalStack()
    try:
        stack.start()
        yield stack
    finally:
        stack.stop()
        os.environ.clear()
        os.environ.update(saved)
        load_policy.cache_clear()


def assert_clean_exit(stack: LocalStackProcess, code: int) -> None:
    assert code == 0, stack.output


@contextlib.contextmanager
def running(log_path: Path, *, logged_failure: str | None = None, **env: str) -> Iterator[LocalStackProcess]:
    """A ready local stack (``env`` added to its environment); stopped with SIGTERM, which must end it
    cleanly. Its log holds no traceback but one after each ``logged_failure`` line (one a test caused)."""
    stack = LocalStackProcess(log_path, env=env).start()
    try:
        stack.wait_ready()
        yield stack
        assert_clean_exit(stack, stack.stop(signal.SIGTERM))
    finally:
        stack.kill()
    assert stack.output.count("Traceback") == (stack.output.count(logged_failure) if logged_failure else 0), stack.output
    assert stack.output.rstrip().endswith("Stopped."), stack.output


def console(stack: LocalStackProcess, path: str):
    """A console page's JSON (``tickets``, ``outbox``, ``rejected``, ``status``)."""
    status, _, body = http("GET", stack.console_url + path)
    assert status == 200, body
    return json.loads(body)


def settled(stack: LocalStackProcess) -> None:
    """Wait until the pumps have handled everything written so far: the stream pump has found nothing
    new in a tick that started now or later (so everything before was handed to the publisher, which
    publishes synchronously), then every other pump in a tick that started after that one ended."""
    def idle_since(moment: float, pumps: set[str]) -> bool:
        ticks = console(stack, "status")["pumps"]
        return all((ticks[p]["last_idle_tick"] or 0) > moment for p in pumps)

    marked = time.time()
    wait_for(lambda: idle_since(marked, {"stream-pump"}), what="the stream pump to find nothing new")
    published = time.time()
    wait_for(lambda: idle_since(published, {"delivery-pump", "team-alert-pump"}), what="the queues to be empty")


def send(stack: LocalStackProcess, message: EmailMessage, to: list[str] | None = None) -> dict:
    """Mail to the local SMTP intake; the recipients it refused (``{}``: accepted)."""
    with smtplib.SMTP("127.0.0.1", stack.smtp_port, timeout=60) as smtp:
        return smtp.send_message(message, to_addrs=to)


def email(subject: str, body: str, sender: str = "Lena Fischer <lena.fischer@example.de>", **headers) -> EmailMessage:
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = sender, SUPPORT, subject
    for name, value in headers.items():
        message[name.replace("_", "-")] = value
    message.set_content(body)
    return message


def tickets_of(stack: LocalStackProcess, address: str) -> list[dict]:
    return [t for t in console(stack, "tickets") if t["customer_email"] == address]

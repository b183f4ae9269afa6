"""Background services of the local stack, started in order and stopped in reverse.

A service is anything with a ``name``, ``start()`` and ``stop()``; ``stop()`` must return promptly
and must not raise for a service that never started. Two kinds cover what the stack needs:

- :class:`HttpService`: a standard-library HTTP server on its own thread (the API front, the
  console; an SMTP server would be a similar socket service);
- :class:`Poller`: calls ``tick()`` every few seconds on its own thread, the shape of every *pump*
  (the DynamoDB stream pump that feeds the publisher, the SNS/SQS delivery pump, the schedule ticker
  that runs the SLA sweep).
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol

from infra.local.config import HOST

log = logging.getLogger("infra.local")


class Service(Protocol):
    name: str

    def start(self) -> None: ...

    def stop(self) -> None: ...


class Services:
    """An ordered group: a failed start stops what already started; stop never raises."""

    def __init__(self, services: Sequence[Service] = ()):
        self.services = list(services)
        self._started: list[Service] = []

    def start(self) -> None:
        for service in self.services:
            try:
                service.start()
            except BaseException:
                self.stop()
                raise
            self._started.append(service)

    def stop(self) -> None:
        while self._started:
            service = self._started.pop()
            try:
                service.stop()
            except Exception:  # one bad service must not keep the others running
                log.exception("stopping %s failed", service.name)


class PortUnavailable(RuntimeError):
    def __init__(self, service: str, port: int, reason: str):
        super().__init__(f"{service}: cannot listen on {HOST}:{port} ({reason})")
        self.service, self.port = service, port


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # an idle keep-alive connection never holds up the exit
    # Connections waiting to be accepted (the default, 5, reset 25 of 40 parallel clients); the kernel
    # caps it at net.core.somaxconn.
    request_queue_size = 1024

    def handle_error(self, request, client_address) -> None:
        """A client that hung up is no error of the server's (socketserver prints a traceback)."""
        if isinstance(sys.exc_info()[1], ConnectionError):
            log.debug("%s hung up", client_address)
        else:
            super().handle_error(request, client_address)


class HttpService:
    """A ThreadingHTTPServer on a thread. The port is bound at construction (so 0 resolves to a free
    port, and a busy port fails before anything starts); ``context`` becomes attributes of the server
    that the request handler reads as ``self.server.<name>``.
    """

    def __init__(self, name: str, handler: type[BaseHTTPRequestHandler], port: int, **context: Any):
        self.name = name
        try:
            self.server = _Server((HOST, port), handler)
        except OSError as error:
            raise PortUnavailable(name, port, error.strerror or str(error)) from None
        for key, value in context.items():
            setattr(self.server, key, value)
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return self.server.server_address[1]

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}/"

    def start(self) -> None:
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.1},
                                        name=self.name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self.server.shutdown()
            self._thread.join(timeout=5)
        self.server.server_close()


class Poller:
    """Calls ``tick()`` until stopped: at once again while it has work, else every ``interval`` seconds.
    A failing tick is logged, not fatal.

    A tick does a bounded piece of work (so that stopping waits for one piece at most) and returns how
    much (a pump: the records or messages it handled; 0: nothing to do). The last tick that found
    nothing to do, without error, is remembered (:meth:`status`): once such a tick *started* after a
    moment, everything the pump could see then has been handled.
    """

    def __init__(self, name: str, tick: Callable[[], object], interval: float):
        self.name = name
        self.tick = tick
        self.interval = interval
        self.ticks = 0
        self.last_idle_tick: float | None = None  # when it started (epoch seconds)
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def status(self) -> dict[str, Any]:
        return {"ticks": self.ticks, "last_idle_tick": self.last_idle_tick}

    def start(self) -> None:
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        busy = False
        while not (self._stopping.is_set() if busy else self._stopping.wait(self.interval)):
            started = time.time()
            try:
                busy = bool(self.tick())
            except Exception:
                log.exception("%s: tick failed", self.name)
                busy = False
            else:
                if not busy:
                    self.last_idle_tick = started
            self.ticks += 1

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

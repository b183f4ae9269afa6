"""The local stack under load: 1,000 tickets opened through HTTP by 8 clients at once.

The stack runs as ``make dev`` runs it (``python -m infra.local`` in a subprocess, on free ports, with
its pumps, chains and sweep ticker); 8 threads POST ``/tickets`` until 1,000 are opened. Printed:
tickets per second over the first and the last 100 (and their ratio: flat means the cost of a request
does not grow with the tables), the 95th percentile latency, the stack's peak resident memory after
250, 500 and 1,000 tickets, and how long the stack takes to stop. ``BENCH_LOCAL_TICKETS`` sets the
count.
"""

from __future__ import annotations

import itertools
import os
import signal
import statistics
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from tests.e2e.local_stack import LocalStackProcess, http

TICKETS = int(os.environ.get("BENCH_LOCAL_TICKETS", "1000"))
CLIENTS = 8
WINDOW = 100  # tickets in the first and the last throughput window
MB = 1024 * 1024


def peak_resident_mb(pid: int) -> float:
    """The process's peak resident set size (VmHWM) so far."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024 / MB
    raise RuntimeError("no VmHWM in /proc/<pid>/status")


def ticket(n: int) -> dict:
    # one address per ticket: an address gets only a few acknowledgements an hour (helpdesk.limits)
    return {"name": f"Load {n}", "email": f"load{n}@example.com", "subject": f"Load test ticket {n}",
            "description": "Opened by the local stack benchmark.", "category": ("billing", "technical", "account")[n % 3]}


def open_tickets(stack: LocalStackProcess, marks: tuple[int, ...]) -> tuple[list[tuple[float, float]], dict, int]:
    """(finish time, latency) of each ticket opened, peak memory at each mark, and failed requests."""
    numbers, lock = itertools.count(), threading.Lock()
    done: list[tuple[float, float]] = []
    peaks: dict[int, float] = {}
    failed = [0]

    def client() -> None:
        while (n := next(numbers)) < TICKETS:
            started = time.perf_counter()
            try:
                status, _, _ = http("POST", stack.api_url + "tickets", json_body=ticket(n), timeout=120)
            except OSError:
                status = None
            finished = time.perf_counter()
            with lock:
                if status != 201:
                    failed[0] += 1
                    continue
                done.append((finished, finished - started))
                if len(done) in marks:
                    peaks[len(done)] = peak_resident_mb(stack.process.pid)

    threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return done, peaks, failed[0]


def run() -> Iterator[tuple[str, float | int | str, str]]:
    marks = tuple(sorted({m for m in (TICKETS // 4, TICKETS // 2, TICKETS) if m}))
    with tempfile.TemporaryDirectory() as scratch:
        stack = LocalStackProcess(Path(scratch) / "output.log").start()
        try:
            stack.wait_ready()
            began = time.perf_counter()
            done, peaks, failed = open_tickets(stack, marks)
            yield from figures(done, peaks, failed, began, marks)
            stopping = time.perf_counter()
            stack.stop(signal.SIGINT)  # fails (pytest.fail) after tests.e2e.local_stack.STOP_TIMEOUT_S
            yield "local_stack_stop_seconds", round(time.perf_counter() - stopping, 2), "s (SIGINT to exit)"
        finally:
            stack.kill()


def figures(done: list[tuple[float, float]], peaks: dict[int, float], failed: int, began: float,
            marks: tuple[int, ...]) -> Iterator[tuple[str, float | int | str, str]]:
    yield "local_stack_tickets_opened", len(done), f"of {TICKETS} ({CLIENTS} HTTP clients; {failed} not 201)"
    if len(done) >= 2 * WINDOW:
        finishes = [f for f, _ in done]
        first = WINDOW / (finishes[WINDOW - 1] - began)
        last = WINDOW / (finishes[-1] - finishes[-WINDOW - 1])
        yield "local_stack_tickets_per_s_first_100", round(first, 1), "tickets/s"
        yield "local_stack_tickets_per_s_last_100", round(last, 1), "tickets/s"
        yield "local_stack_throughput_ratio_last_first", round(last / first, 2), "x (target >= 0.8)"
    if len(done) >= 2:
        yield "local_stack_open_latency_p95", round(statistics.quantiles([lat for _, lat in done], n=20)[-1] * 1000), "ms"
    for mark in marks:
        if mark in peaks:
            yield f"local_stack_peak_memory_{mark}_tickets", round(peaks[mark]), "MB (target < 1024 at 1000)"


if __name__ == "__main__":
    for metric, value, unit in run():
        print(f"{metric}: {value} {unit}")

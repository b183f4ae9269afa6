"""``python -m infra.local`` (what ``make dev`` runs): the local stack in the foreground until Ctrl-C."""

import time

_STARTED = time.perf_counter()  # before the heavy imports: "ready in" counts them

import logging  # noqa: E402
import signal  # noqa: E402
import sys  # noqa: E402
import threading  # noqa: E402
import warnings  # noqa: E402


def main() -> int:
    stopping = threading.Event()

    def request_stop(signum, frame) -> None:
        stopping.set()

    # First of all, so that a Ctrl-C at any moment ends in the same clean stop (no traceback).
    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)

    from infra.local.config import prepare_environment

    prepare_environment()
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(message)s")
    for chatty in ("botocore", "pynamodb"):
        logging.getLogger(chatty).setLevel(logging.WARNING)
    # A request that records no metric is normal here (every page load): not worth a warning.
    warnings.filterwarnings("ignore", message="No application metrics to publish")

    from helpdesk.settings import Env
    from infra.local.services import PortUnavailable
    from infra.local.stack import LocalStack

    stack = LocalStack()
    try:
        stack.start()
    except PortUnavailable as error:
        print(f"{error}. Set HELPDESK_PORT / HELPDESK_CONSOLE_PORT / HELPDESK_SMTP_PORT / HELPDESK_COGNITO_PORT "
              "to free ports.",
              file=sys.stderr)
        return 1

    urls = stack.urls
    smtp = stack.smtp
    print(
        f"Helpdesk local stack ready in {time.perf_counter() - _STARTED:.2f} s\n"
        f"  Support form  {urls.form}\n"
        f"  API           {urls.api}\n"
        f"  OpenAPI       {urls.openapi}\n"
        f"  Console       {urls.console}  (tickets: {urls.console}tickets, outbox: {urls.console}outbox.html)\n"
        f"  SMTP intake   {smtp.address}  (mail to {smtp.receiver.support_local}@{smtp.receiver.domain}; "
        f"rejected: {urls.console}rejected)\n"
        f"  Agent sign-in {urls.cognito}  (Cognito's API: user pool {stack.resources[Env.USER_POOL_ID]}, "
        f"app client {stack.resources[Env.USER_POOL_CLIENT_ID]}; the agents: README)\n"
        "Press Ctrl-C to stop.",
        flush=True,
    )
    while not stopping.wait(0.5):
        pass
    print("Stopping...", flush=True)
    stack.stop()
    print("Stopped.", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

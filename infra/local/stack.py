"""The local stack: moto, the resources, and the services around the functions, in one object.

Start order: moto -> resources (``resources.BUILDERS``) -> services (``SERVICES``, in order);
stop order is the reverse. A later capability plugs in by adding a resource builder and/or a
service factory here; nothing else changes::

    def _stream_pump(stack):   # DynamoDB stream -> functions.publisher.handler
        return pumps.stream_pump(stack.dead_letters.stream_batch)

    SERVICES = (_emulator, _console, _stream_pump, _api)

A service gets what it needs from the stack as arguments (the outbox, the ports): no piece imports
the stack back.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

from helpdesk.settings import Env
from infra.local import config, console, dead_letters, pumps, report_page, smtp
from infra.local.dead_letters import DeadLetters
from infra.local.api_gateway import AGENT_PROXY, api_front
from infra.local.aws import mocked_aws
from infra.local.cognito import CognitoAuthorizer, cognito_idp
from infra.local.config import LocalEnv
from infra.local.emulator import COUNTS, AwsLikeEmulator
from infra.local.executor import AwsLikeExecutor
from infra.local.outbox import Outbox
from infra.local.resources import create_resources
from infra.local.schedule import sweep_ticker
from infra.local.services import HttpService, Poller, Service, Services


@dataclass(frozen=True)
class Urls:
    form: str
    api: str
    openapi: str
    console: str
    cognito: str  # the agents' sign-in (Cognito's API), the console's and curl's cognito-idp endpoint


class LocalStack:
    def __init__(self, *, api_port: int | None = None, console_port: int | None = None):
        self.api_port = config.port(LocalEnv.PORT) if api_port is None else api_port
        self.console_port = config.port(LocalEnv.CONSOLE_PORT) if console_port is None else console_port
        self.outbox = Outbox()
        self.resources: dict[Env, str] = {}
        self.services = Services()
        self.api: HttpService | None = None
        self.console: HttpService | None = None
        self.smtp: smtp.SmtpService | None = None
        self.dead_letters: DeadLetters | None = None  # where the pumps and the SMTP intake leave what they gave up on
        self.cognito: HttpService | None = None
        self._mock = None

    def start(self) -> None:
        self._mock = mocked_aws()
        self._mock.start()
        try:
            self.resources = create_resources()
            self.dead_letters = DeadLetters()
            self.services = Services()
            for make in SERVICES:  # kept as they are built: a failure releases the ports bound so far
                self.services.services.append(make(self))
            self.services.start()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        self.services.stop()
        for service in self.services.services:  # built but never started: release their ports
            if isinstance(service, HttpService):
                service.server.server_close()
        if self._mock is not None:
            self._mock.stop()
            self._mock = None

    def __enter__(self) -> LocalStack:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def urls(self) -> Urls:
        api = self.api.url
        return Urls(form=api, api=api + "tickets", openapi=api + "openapi.json", console=self.console.url,
                    cognito=self.cognito.url)

    def status(self) -> dict:
        """The pumps' ticks (see :class:`Poller`) and what the emulator did: the console's ``/status``."""
        return {"pumps": {s.name: s.status() for s in self.services.services if isinstance(s, Poller)},
                "emulator": dict(COUNTS)}


# -- the services, in start order ------------------------------------------------------------------

def _emulator(stack: LocalStack) -> Service:
    """First: every service after it calls moto from its own threads."""
    return AwsLikeEmulator()


def _console(stack: LocalStack) -> Service:
    state = console.ConsoleState(outbox=stack.outbox, status=stack.status)
    stack.console = console.console(stack.console_port, state,
                                    console.Pages.merged(console.PAGES, report_page.PAGES, smtp.PAGES,
                                                                dead_letters.PAGES))
    return stack.console


def _smtp(stack: LocalStack) -> Service:
    """SES email receiving: mail to the support address becomes the intake function's SES event."""
    from functions.email_intake import handler  # reads its table and bucket names when imported

    # An asynchronous invocation in the cloud: what fails lands in the intake's dead-letter queue.
    stack.smtp = smtp.smtp_intake(config.port(LocalEnv.SMTP_PORT), stack.dead_letters.guard("email", handler.handler))
    return stack.smtp


def _cognito(stack: LocalStack) -> Service:
    """The agents' sign-in: Cognito's user pools API on moto's pool (``resources.agent_user_pool``)."""
    stack.cognito = cognito_idp(config.port(LocalEnv.COGNITO_PORT), stack.resources[Env.USER_POOL_ID])
    os.environ[Env.COGNITO_ENDPOINT] = stack.cognito.url  # the console signs in here, not at AWS
    return stack.cognito


def _executor(stack: LocalStack) -> Service:
    """moto's Step Functions executor, keeping AWS's time."""
    return AwsLikeExecutor()


def _outbox_recorder(stack: LocalStack) -> Service:
    return pumps.OutboxRecorder(stack.outbox)


def _stream_pump(stack: LocalStack) -> Service:
    return pumps.stream_pump(stack.dead_letters.stream_batch)


def _delivery_pump(stack: LocalStack) -> Service:
    return pumps.delivery_pump(stack.dead_letters.invocation)


def _team_alert_pump(stack: LocalStack) -> Service:
    return pumps.team_alert_pump(stack.outbox)


def _sweep_ticker(stack: LocalStack) -> Service:
    """The SLA sweep, as its EventBridge schedule would invoke it."""
    return sweep_ticker()


def _api(stack: LocalStack) -> Service:
    """Last: the public door opens when everything behind it runs."""
    # Imported only now: the handler reads its table names from the environment when imported.
    from functions.api import handler

    # /agent/{proxy+} behind the agents' pool, as infra/constructs/api.py deploys it
    authorizer = CognitoAuthorizer(user_pool_id=stack.resources[Env.USER_POOL_ID],
                                   client_id=stack.resources[Env.USER_POOL_CLIENT_ID],
                                   region=os.environ["AWS_DEFAULT_REGION"])
    # Memory and timeout as infra/constructs/api.py deploys the function.
    front = api_front(stack.api_port, handler.handler, function_name="helpdesk-api", memory_mb=512, timeout_s=10,
                      authorizers={AGENT_PROXY: authorizer})
    # Links in pages and emails point here (set once the port is known: 0 picks a free one).
    os.environ[Env.PUBLIC_BASE_URL] = front.url
    stack.api = front
    return front


SERVICES: tuple[Callable[[LocalStack], Service], ...] = (
    _emulator,
    _console,
    _smtp,
    _cognito,
    _executor,
    _outbox_recorder,
    _stream_pump,
    _delivery_pump,
    _team_alert_pump,
    _sweep_ticker,
    _api,
)

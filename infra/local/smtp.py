"""The local SMTP intake: what SES email receiving does, at 127.0.0.1:$HELPDESK_SMTP_PORT (2525).

Send mail to ``support@helpdesk.local`` (the support address, ``Env.SUPPORT_ADDRESS``) with any mail
client or ``smtplib``; what happens next is what the receipt rule in ``infra/constructs/email.py``
does in the cloud:

- Recipients: the support address and its reply addresses (``support+<token>@``) are accepted, as the
  rule's recipient condition matches them; another address at the support domain is refused with
  ``550 5.1.1`` (no rule covers it) and any other domain with ``550 5.7.1`` (we relay nothing).
- The message gets the headers SES prepends (Return-Path from MAIL FROM, ``<>`` for a bounce's null
  sender, Received, and spam and virus verdicts: ``PASS``, nothing is scanned locally) and a
  40-character SES-style message id. Lines of any length are accepted, as SES accepts them
  (aiosmtpd's default refuses those over RFC 5321's 1,000 octets).
- The S3 action: the raw message goes to the mail bucket at ``inbound/<message id>``.
- The Lambda action: the intake function runs in-process with the SES event the cloud sends (the
  shape of ``events/ses/inbound.json``), one message at a time, before the SMTP answer (in the cloud
  the invocation is asynchronous; here the mail's ticket exists when ``sendmail`` returns). An error
  in the function is logged (in the cloud: two retries, then the on-failure queue); the mail is
  still accepted, as SES accepted it.

The console's ``/rejected`` page lists the rejected-mail records (``helpdesk.intake.rejected``).
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import re
import secrets
import socket
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from email.parser import BytesHeaderParser
from email.policy import compat32

from infra.local.config import HOST
from infra.local.console import ConsoleState, Pages, _json
from infra.local.services import PortUnavailable

log = logging.getLogger("infra.local")

FUNCTION_NAME = "helpdesk-email-intake"
MEMORY_MB, TIMEOUT_S = 1024, 60  # as infra/constructs/email.py deploys the intake function
MAX_MESSAGE_BYTES = 40 * 1024 * 1024  # SES receiving's limit (with an S3 action)
NULL_SENDER = "<>"  # how aiosmtpd reports MAIL FROM:<> (a bounce, an auto-reply); SES's event: source ""
HOSTNAME = "inbound-smtp.local"  # in the cloud: inbound-smtp.<region>.amazonaws.com (the MX record)
REGION_ACCOUNT = ("us-east-1", "123456789012")  # moto's defaults
_SES_ID_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz"

Invoke = Callable[[dict, object], object]
PAGES = Pages()


def ses_message_id() -> str:
    """A message id like the ones SES receiving assigns (40 lower-case letters and digits)."""
    return "".join(secrets.choice(_SES_ID_ALPHABET) for _ in range(40))


def _iso_ms(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def ses_headers(*, message_id: str, mail_from: str, recipients: list[str], peer: str, helo: str,
                at: datetime) -> bytes:
    """What SES prepends to a received message (the stored raw message starts with these)."""
    received = (f"from {helo or 'unknown'} ({peer or 'unknown'}) by {HOSTNAME} with SMTP id {message_id} "
                f"for {recipients[0] if len(recipients) == 1 else 'multiple recipients'}; "
                f"{email.utils.format_datetime(at.astimezone(UTC))} (UTC)")
    lines = [f"Return-Path: <{mail_from}>", f"Received: {received}",
             "X-SES-Spam-Verdict: PASS", "X-SES-Virus-Verdict: PASS"]
    return ("\r\n".join(lines) + "\r\n").encode("utf-8")


def _unfold(value: str) -> str:
    return re.sub(r"\r?\n[ \t]*", " ", value).strip()


def ses_event(*, message_id: str, raw: bytes, mail_from: str, recipients: list[str], at: datetime,
              function_name: str = FUNCTION_NAME) -> dict:
    """The event the receipt rule's Lambda action sends for a message stored as ``raw`` (SES's own
    headers included): the shape of ``events/ses/inbound.json``, verdicts PASS."""
    headers = BytesHeaderParser(policy=compat32).parsebytes(raw)
    pairs = [(name, _unfold(str(value))) for name, value in headers.items()]

    def first(name: str) -> str | None:
        return next((value for key, value in pairs if key.lower() == name.lower()), None)

    def addresses(name: str) -> list[str] | None:
        value = first(name)
        return [part.strip() for part in _split_addresses(value)] if value else None

    common = {"returnPath": mail_from, "from": addresses("From"), "date": first("Date"), "to": addresses("To"),
              "cc": addresses("Cc"), "messageId": first("Message-ID"), "subject": first("Subject")}
    region, account = REGION_ACCOUNT
    timestamp = _iso_ms(at)
    passed = {"status": "PASS"}
    return {"Records": [{
        "eventSource": "aws:ses",
        "eventVersion": "1.0",
        "ses": {
            "mail": {
                "timestamp": timestamp,
                "source": mail_from,
                "messageId": message_id,
                "destination": list(recipients),
                "headersTruncated": False,
                "headers": [{"name": name, "value": value} for name, value in pairs],
                "commonHeaders": {key: value for key, value in common.items() if value is not None},
            },
            "receipt": {
                "timestamp": timestamp,
                "processingTimeMillis": 1,
                "recipients": list(recipients),
                "spamVerdict": dict(passed),
                "virusVerdict": dict(passed),
                "spfVerdict": {"status": "GRAY"},  # nothing to check locally
                "dkimVerdict": {"status": "GRAY"},
                "dmarcVerdict": {"status": "GRAY"},
                "action": {
                    "type": "Lambda",
                    "functionArn": f"arn:aws:lambda:{region}:{account}:function:{function_name}",
                    "invocationType": "Event",
                },
            },
        },
    }]}


def _split_addresses(value: str) -> list[str]:
    """``a@x, "B, b" <b@x>`` -> the two mailboxes as written (commas inside quotes or <> stay)."""
    parts, current, quoted, angle = [], "", False, False
    for char in value:
        if char == '"':
            quoted = not quoted
        elif char == "<" and not quoted:
            angle = True
        elif char == ">" and not quoted:
            angle = False
        if char == "," and not quoted and not angle:
            parts.append(current)
            current = ""
        else:
            current += char
    parts.append(current)
    return [p for p in (p.strip() for p in parts) if p]


class Receiver:
    """What SES does with an accepted message: store it raw, then invoke the intake function."""

    def __init__(self, *, support_address: str, bucket: str, invoke: Invoke, s3_client=None):
        self.support_local, _, self.domain = support_address.lower().rpartition("@")
        self.bucket = bucket
        self.invoke = invoke
        self._s3 = s3_client
        self._lock = threading.Lock()  # one warm function: invocations one at a time

    @property
    def s3(self):
        if self._s3 is None:
            import boto3

            self._s3 = boto3.client("s3")
        return self._s3

    def refusal(self, recipient: str) -> str | None:
        """The SMTP answer refusing ``recipient``, or None to accept it."""
        local, _, domain = recipient.strip().strip("<>").rpartition("@")
        if domain.lower() != self.domain:
            return "550 5.7.1 Relaying denied: this server only receives mail for " + self.domain
        if local.lower().split("+")[0] != self.support_local:
            return "550 5.1.1 Mailbox does not exist"
        return None

    def deliver(self, *, content: bytes, mail_from: str, recipients: list[str], peer: str = "",
                helo: str = "") -> str:
        """Store and hand over one message; its SES message id."""
        from helpdesk import intake
        from infra.local.api_gateway import LambdaContext

        message_id = ses_message_id()
        at = datetime.now(UTC)
        raw = ses_headers(message_id=message_id, mail_from=mail_from, recipients=recipients, peer=peer,
                          helo=helo, at=at) + content
        self.s3.put_object(Bucket=self.bucket, Key=intake.RAW_PREFIX + message_id, Body=raw)
        event = ses_event(message_id=message_id, raw=raw, mail_from=mail_from, recipients=recipients, at=at)
        started = time.perf_counter()
        with self._lock:
            try:
                result = self.invoke(event, LambdaContext(FUNCTION_NAME, memory_limit_in_mb=MEMORY_MB,
                                                          timeout_s=TIMEOUT_S))
            except Exception:
                log.exception("email intake failed for %s (in the cloud: retried twice, then the "
                              "on-failure queue)", message_id)
                return message_id
        outcomes = (result or {}).get("outcomes") if isinstance(result, dict) else None
        log.info("smtp %s -> %s (%.0f ms)", message_id, outcomes, (time.perf_counter() - started) * 1000)
        return message_id


class _Handler:
    """aiosmtpd's hooks: RCPT checks the recipient, DATA delivers (off the event loop)."""

    def __init__(self, receiver: Receiver):
        self.receiver = receiver

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802
        refusal = self.receiver.refusal(address)
        if refusal:
            return refusal
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        content = envelope.original_content or envelope.content
        if isinstance(content, str):
            content = content.encode("utf-8", "surrogateescape")
        peer = session.peer[0] if isinstance(session.peer, tuple) else str(session.peer or "")
        mail_from = "" if envelope.mail_from in (None, NULL_SENDER) else envelope.mail_from
        deliver = lambda: self.receiver.deliver(  # noqa: E731
            content=content, mail_from=mail_from, recipients=list(envelope.rcpt_tos),
            peer=f"[{peer}]", helo=session.host_name or "")
        try:
            message_id = await asyncio.get_running_loop().run_in_executor(None, deliver)
        except Exception:  # the bucket is unreachable: SES would defer the message too
            log.exception("smtp: could not store the message")
            return "451 4.3.0 Temporary failure, please try again later"
        return f"250 Ok {message_id}"


class SmtpService:
    """An aiosmtpd server on its own event-loop thread. The port is bound at construction, so a busy
    port fails before anything starts and 0 resolves to a free port at once (like ``HttpService``)."""

    name = "smtp"

    def __init__(self, port: int, receiver: Receiver):
        self.receiver = receiver
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self._socket.bind((HOST, port))
        except OSError as error:
            self._socket.close()
            raise PortUnavailable(self.name, port, error.strerror or str(error)) from None
        self._socket.listen(64)
        self._socket.setblocking(False)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return self._socket.getsockname()[1]

    @property
    def address(self) -> str:
        return f"{HOST}:{self.port}"

    def start(self) -> None:
        from aiosmtpd.smtp import SMTP

        logging.getLogger("mail.log").setLevel(logging.WARNING)  # aiosmtpd logs every SMTP command at INFO

        ready, failure = threading.Event(), []
        self._loop = asyncio.new_event_loop()
        handler = _Handler(self.receiver)

        class SesLike(SMTP):
            line_length_limit = MAX_MESSAGE_BYTES  # SES takes lines over RFC 5321's 1,000 octets

        def factory():
            return SesLike(handler, hostname=HOSTNAME, ident="Helpdesk local SMTP intake (SES stand-in)",
                           data_size_limit=MAX_MESSAGE_BYTES, enable_SMTPUTF8=True, decode_data=False)

        def run() -> None:
            asyncio.set_event_loop(self._loop)
            try:
                self._server = self._loop.run_until_complete(self._loop.create_server(factory, sock=self._socket))
            except BaseException as error:  # noqa: BLE001 - reported to start()
                failure.append(error)
                ready.set()
                return
            ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, name=self.name, daemon=True)
        self._thread.start()
        ready.wait(5)
        if failure:
            raise failure[0]

    def stop(self) -> None:
        loop = self._loop
        if loop is not None and self._thread is not None and self._thread.is_alive():
            async def shutdown() -> None:
                if self._server is not None:
                    self._server.close()
                sessions = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
                for task in sessions:  # open SMTP sessions end now
                    task.cancel()
                await asyncio.gather(*sessions, return_exceptions=True)
                loop.stop()

            loop.call_soon_threadsafe(lambda: loop.create_task(shutdown()))
            self._thread.join(timeout=5)
        if loop is not None and not loop.is_running():
            loop.close()
        self._socket.close()


def smtp_intake(port: int, invoke: Invoke) -> SmtpService:
    """The local SES receiving stand-in for the support address, delivering to ``invoke``."""
    from helpdesk import intake, settings
    from helpdesk.settings import Env

    receiver = Receiver(support_address=intake.support_address(), bucket=settings.get(Env.MAIL_BUCKET),
                        invoke=invoke)
    return SmtpService(port, receiver)


@PAGES.add("/rejected", "Rejected mail: spam, auto-replies, floods, unreadable (JSON)")
def _rejected(state: ConsoleState):
    from helpdesk import intake

    return _json(intake.rejected(days=intake.RAW_MAIL_DAYS, limit=1000))

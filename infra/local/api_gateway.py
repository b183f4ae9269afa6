"""The API front: what API Gateway (REST API, Lambda proxy integration) does, for one local function.

Each HTTP request becomes the v1 proxy event API Gateway would send (see ``events/api/*.json``),
the handler runs in-process with a fake Lambda context, and its proxy response becomes the HTTP
response. Where API Gateway's behaviour matters to the function, this follows it:

- ``path`` is the request path as sent (still percent-encoded); ``pathParameters`` and the query
  parameters are decoded; repeated headers and query keys keep their last value in the single-value
  maps and every value in the ``multiValue*`` maps; an absent query string or body is ``null``.
- ``resource`` and ``pathParameters`` follow the deployed API's resources: ``LambdaRestApi`` (proxy)
  in ``infra/constructs/api.py`` declares ``/`` and ``/{proxy+}``, so ``GET /tickets/HD-7KQ2M9``
  arrives as resource ``/{proxy+}`` with ``{"proxy": "tickets/HD-7KQ2M9"}``; the agents' resources
  (``infra/constructs/api.py``: ``protect_agent_routes``) are ``/agent`` and ``/agent/{proxy+}``.
- A resource with an authorizer (``/agent/{proxy+}``: the agents' Cognito user pool) reaches the
  function only with its claims in ``requestContext.authorizer.claims``; otherwise the front answers
  API Gateway's UNAUTHORIZED gateway response (:func:`unauthorized`) and the function never runs.
- The stage is ``v1`` (as deployed); the local front serves at the root, as a custom domain does,
  so ``requestContext.path`` has no stage prefix.
- ``headers``/``multiValueHeaders`` of the response are merged; a malformed response or an uncaught
  exception is API Gateway's 502 "Internal server error".
- What API Gateway answers by itself is answered from ``infra.gateway_responses``, as the deployed
  API's gateway responses answer it: a method ANY does not cover (TRACE, CONNECT...), a payload over
  10 MB, a 502; and anything the HTTP server refuses (a malformed request line) in the DEFAULT_4XX shape.
  A chunked body is read as API Gateway reads it.
- One request at a time: a single warm execution environment, like one Lambda instance (Powertools'
  resolver keeps the current event in module state, so concurrent calls would interfere).
"""

from __future__ import annotations

import base64
import logging
import os
import re
import secrets
import threading
import time
import traceback
import uuid
import zlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler
from urllib.parse import unquote, urlsplit

from infra import gateway_responses
from infra.agent_pool import AGENT_PATH
from infra.gateway_responses import GatewayResponse
from infra.local.config import HOST
from infra.local.services import HttpService

log = logging.getLogger("infra.local")

STAGE = "v1"  # infra/constructs/api.py: deploy_options.stage_name
PROXY_RESOURCES = ("/", "/{proxy+}")  # what LambdaRestApi(proxy=True) declares
AGENT_RESOURCES = (f"/{AGENT_PATH}", f"/{AGENT_PATH}/{{proxy+}}")  # GET /agent/ open, the rest behind Cognito
AGENT_PROXY = AGENT_RESOURCES[1]
API_ID = "local"
ACCOUNT_ID = "123456789012"  # moto's default account
MAX_PAYLOAD = 10 * 1024 * 1024  # API Gateway's request payload limit

Handler = Callable[[dict, object], dict]
# An authorizer takes the request's headers and returns the claims API Gateway hands the function
# (requestContext.authorizer.claims), or raises Unauthorized with API Gateway's message.
Authorizer = Callable[[Mapping[str, str]], dict[str, str]]


class Unauthorized(Exception):
    """An authorizer's refusal; its message is what API Gateway's 401 says."""


# -- routes ----------------------------------------------------------------------------------------

class Routes:
    """Route templates (``/tickets/{ticket_id}``, ``/files/{proxy+}``) matched against request paths."""

    def __init__(self, templates: Iterable[str]):
        self._compiled: list[tuple[str, re.Pattern]] = []
        # Static templates first, then the more specific ones: what API Gateway prefers.
        for template in sorted(set(templates), key=lambda t: (t.count("{"), -len(t))):
            pattern = re.sub(r"\\\{(\w+)\\\+\\\}", r"(?P<\1>.+)", re.escape(template))
            pattern = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", pattern)
            self._compiled.append((template, re.compile(pattern + "/?")))

    def match(self, raw_path: str) -> tuple[str, dict[str, str] | None]:
        for template, pattern in self._compiled:
            found = pattern.fullmatch(raw_path)
            if found:
                return template, ({k: unquote(v) for k, v in found.groupdict().items()} or None)
        return raw_path, None


# -- request -> event ------------------------------------------------------------------------------

def _multi(pairs: Iterable[tuple[str, str]]) -> tuple[dict[str, str] | None, dict[str, list[str]] | None]:
    single: dict[str, str] = {}
    multi: dict[str, list[str]] = {}
    for key, value in pairs:
        single[key] = value  # the last one wins
        multi.setdefault(key, []).append(value)
    return (single or None), (multi or None)


def _query_pairs(query: str) -> list[tuple[str, str]]:
    pairs = []
    for part in query.split("&"):
        if not part:
            continue
        key, _, value = part.partition("=")
        pairs.append((unquote(key), unquote(value)))
    return pairs


def build_event(*, method: str, target: str, headers: list[tuple[str, str]], body: bytes,
                source_ip: str, routes: Routes, request_id: str | None = None,
                now: datetime | None = None) -> dict:
    """The API Gateway REST v1 proxy event for one HTTP request (``target`` is the request line's path)."""
    now = now or datetime.now(UTC)
    request_id = request_id or str(uuid.uuid4())
    split = urlsplit(target)
    raw_path = split.path or "/"
    resource, path_parameters = routes.match(raw_path)
    header_map = {k.lower(): v for k, v in headers}
    host = header_map.get("host", f"{HOST}")
    user_agent = header_map.get("user-agent")

    forwarded_for = ", ".join(v for v in (header_map.get("x-forwarded-for"), source_ip) if v)
    trace_id = f"Root=1-{int(now.timestamp()):08x}-{secrets.token_hex(12)}"
    headers = [(k, v) for k, v in headers if k.lower() not in
               {"x-forwarded-for", "x-forwarded-port", "x-forwarded-proto", "x-amzn-trace-id"}]
    headers += [("X-Amzn-Trace-Id", trace_id), ("X-Forwarded-For", forwarded_for),
                ("X-Forwarded-Port", host.rpartition(":")[2] if ":" in host else "80"),
                ("X-Forwarded-Proto", "http")]
    single_headers, multi_headers = _multi(headers)
    query, multi_query = _multi(_query_pairs(split.query))

    if body:
        try:
            text, is_base64 = body.decode("utf-8"), False
        except UnicodeDecodeError:
            text, is_base64 = base64.b64encode(body).decode("ascii"), True
    else:
        text, is_base64 = None, False

    return {
        "resource": resource,
        "path": raw_path,
        "httpMethod": method,
        "headers": single_headers,
        "multiValueHeaders": multi_headers,
        "queryStringParameters": query,
        "multiValueQueryStringParameters": multi_query,
        "pathParameters": path_parameters,
        "stageVariables": None,
        "requestContext": {
            "resourceId": f"{zlib.crc32(resource.encode()):08x}"[:6],
            "resourcePath": resource,
            "httpMethod": method,
            "extendedRequestId": base64.b32encode(secrets.token_bytes(10)).decode()[:16],
            "requestTime": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "path": raw_path,  # served at the root, as behind a custom domain
            "accountId": ACCOUNT_ID,
            "protocol": "HTTP/1.1",
            "stage": STAGE,
            "domainPrefix": host.split(".")[0].split(":")[0],
            "requestTimeEpoch": int(now.timestamp() * 1000),
            "requestId": request_id,
            "identity": {
                "cognitoIdentityPoolId": None, "accountId": None, "cognitoIdentityId": None,
                "caller": None, "sourceIp": source_ip, "principalOrgId": None, "accessKey": None,
                "cognitoAuthenticationType": None, "cognitoAuthenticationProvider": None,
                "userArn": None, "userAgent": user_agent, "user": None,
            },
            "domainName": host,
            "deploymentId": "local",
            "apiId": API_ID,
        },
        "body": text,
        "isBase64Encoded": is_base64,
    }


# -- the Lambda side -------------------------------------------------------------------------------

@dataclass
class LambdaContext:
    """The attributes and method of the Lambda context object that Powertools and handlers use."""

    function_name: str
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    memory_limit_in_mb: int = 128
    timeout_s: float = 3.0
    function_version: str = "$LATEST"
    identity: object = None
    client_context: object = None
    _deadline: float = field(default=0.0, repr=False)

    def __post_init__(self):
        self._deadline = time.monotonic() + self.timeout_s

    @property
    def invoked_function_arn(self) -> str:
        region = os.environ.get("AWS_DEFAULT_REGION", "us-east-1")
        return f"arn:aws:lambda:{region}:{ACCOUNT_ID}:function:{self.function_name}"

    @property
    def log_group_name(self) -> str:
        return f"/aws/lambda/{self.function_name}"

    @property
    def log_stream_name(self) -> str:
        return f"{datetime.now(UTC):%Y/%m/%d}/[{self.function_version}]local"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def gateway_answer(response: GatewayResponse, status: int | None = None, message: str = "",
                   ) -> tuple[int, list[tuple[str, str]], bytes]:
    """What the deployed API's gateway response answers: ``status`` and ``message`` are API Gateway's
    own, for the DEFAULT_* responses that keep them."""
    headers = [("Content-Type", "application/json"), *response.headers.items()]
    return response.status or status, headers, response.body(message)


_BAD_GATEWAY = gateway_answer(gateway_responses.DEFAULT_5XX, 502, "Internal server error")


def unauthorized(message: str) -> tuple[int, list[tuple[str, str]], bytes]:
    """API Gateway's UNAUTHORIZED gateway response (401): the authorizer found no valid token
    (``Unauthorized``) or an expired one (``The incoming token has expired``)."""
    status, headers, body = gateway_answer(gateway_responses.UNAUTHORIZED, 401, message)
    return status, [*headers, ("x-amzn-ErrorType", "UnauthorizedException")], body


def proxy_response(result: object) -> tuple[int, list[tuple[str, str]], bytes]:
    """Status, headers and body from a Lambda proxy response; a malformed one is API Gateway's 502."""
    if not isinstance(result, dict) or "statusCode" not in result:
        return _BAD_GATEWAY
    try:
        status = int(result["statusCode"])
        merged: dict[str, list[str]] = {k: [str(v) for v in vs]
                                        for k, vs in (result.get("multiValueHeaders") or {}).items()}
        for key, value in (result.get("headers") or {}).items():
            values = merged.setdefault(key, [])
            if str(value) not in values:
                values.append(str(value))
        body = result.get("body") or ""
        if not isinstance(body, str):
            return _BAD_GATEWAY
        payload = base64.b64decode(body) if result.get("isBase64Encoded") else body.encode("utf-8")
    except (TypeError, ValueError, AttributeError):
        return _BAD_GATEWAY
    if not 100 <= status <= 599:
        return _BAD_GATEWAY
    return status, [(k, v) for k, vs in merged.items() for v in vs], payload


# -- the HTTP server -------------------------------------------------------------------------------

class ApiGatewayRequestHandler(BaseHTTPRequestHandler):
    """Reads ``self.server.function`` (the handler), ``.function_name``, ``.memory_mb``, ``.timeout_s``,
    ``.routes``, ``.authorizers`` (resource -> :data:`Authorizer`) and ``.invoke_lock``."""

    protocol_version = "HTTP/1.1"

    def _proxy(self) -> None:
        started = time.perf_counter()
        body = self._body()
        if body is None:
            self.close_connection = True
            return self._reply(*gateway_answer(gateway_responses.REQUEST_TOO_LARGE), started)
        request_id = str(uuid.uuid4())
        event = build_event(method=self.command, target=self.path, headers=list(self.headers.items()),
                            body=body, source_ip=self.client_address[0], routes=self.server.routes,
                            request_id=request_id)
        context = LambdaContext(self.server.function_name, aws_request_id=request_id,
                                memory_limit_in_mb=self.server.memory_mb, timeout_s=self.server.timeout_s)
        refused = self._authorize(event)
        if refused is not None:  # API Gateway answers itself: the function never runs
            status, headers, payload = refused
            return self._reply(status, headers + [("x-amzn-RequestId", request_id)], payload, started)
        with self.server.invoke_lock:
            try:
                result = self.server.function(event, context)
            except Exception:
                traceback.print_exc()  # what CloudWatch Logs would show
                result = None
        status, headers, payload = proxy_response(result)
        if status == 502 and result is not None:
            log.error("malformed Lambda proxy response: %.200r", result)
        headers += [("x-amzn-RequestId", request_id), ("x-amz-apigw-id", event["requestContext"]["extendedRequestId"]),
                    ("X-Amzn-Trace-Id", event["headers"]["X-Amzn-Trace-Id"])]
        self._reply(status, headers, payload, started)

    def _body(self) -> bytes | None:
        """The request body (chunked or not); None past API Gateway's payload limit."""
        if self.headers.get("Transfer-Encoding", "").lower() != "chunked":
            try:
                length = int(self.headers.get("Content-Length") or 0)
            except ValueError:
                length = MAX_PAYLOAD + 1  # unreadable: refused, and the connection closed
            return self.rfile.read(length) if 0 < length <= MAX_PAYLOAD else (b"" if length == 0 else None)
        chunks, size = [], 0
        while True:
            line = self.rfile.readline(1024)
            try:
                chunk_size = int(line.split(b";")[0].strip() or b"x", 16)
            except ValueError:
                return None
            if chunk_size == 0:
                while self.rfile.readline(1024).strip():  # the trailer, up to its empty line
                    pass
                return b"".join(chunks)
            size += chunk_size
            if size > MAX_PAYLOAD:
                return None
            chunks.append(self.rfile.read(chunk_size))
            self.rfile.readline(1024)  # the CRLF after the chunk

    def _unknown_method(self) -> None:
        """A method ANY does not cover: no method of the API matches it (MISSING_AUTHENTICATION_TOKEN)."""
        self.close_connection = True  # its body, if any, is left unread
        self._reply(*gateway_answer(gateway_responses.METHOD_NOT_ALLOWED), time.perf_counter())

    def __getattr__(self, name: str):
        if name.startswith("do_"):  # how http.server looks up the request's method
            return self._unknown_method
        raise AttributeError(name)

    def parse_request(self) -> bool:
        """HTTP/1.0 and 1.1 only: an HTTP/0.9 request (no version, no headers) is refused, not served."""
        if not super().parse_request():
            return False
        if self.request_version == "HTTP/0.9":
            self.send_error(400, "HTTP/0.9 is not supported")
            return False
        return True

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """What the HTTP server refuses itself (a malformed request line, headers too long, a version it
        does not speak), as a client error in our shape (DEFAULT_4XX), with a status line whatever came."""
        self.close_connection = True
        self.request_version = "HTTP/1.1"  # a garbled request line leaves HTTP/0.9: no status line otherwise
        code = code if code < 500 else 400  # 505 "HTTP version not supported": the client's request is at fault
        status, headers, payload = gateway_answer(gateway_responses.DEFAULT_4XX, code,
                                                  message or self.responses.get(code, ("",))[0])
        self.send_response_only(status)
        for key, value in [*headers, ("Content-Length", str(len(payload))), ("Connection", "close")]:
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD" and code >= 200 and code not in (204, 304):
            self.wfile.write(payload)

    def _authorize(self, event: dict) -> tuple[int, list[tuple[str, str]], bytes] | None:
        """The resource's authorizer, if it has one: its claims go into the event, or its refusal is the answer."""
        authorize = self.server.authorizers.get(event["resource"])
        if authorize is None:
            return None
        try:
            event["requestContext"]["authorizer"] = {"claims": authorize(event["headers"] or {})}
        except Unauthorized as refused:
            return unauthorized(str(refused))
        return None

    def _reply(self, status: int, headers: list[tuple[str, str]], payload: bytes, started: float) -> None:
        self.send_response_only(status)
        self.send_header("Date", self.date_time_string())
        for key, value in headers:
            if key.lower() not in {"content-length", "connection", "transfer-encoding"}:
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(payload)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)
        # The path without its query: access tokens travel in it and never go to a log.
        log.info("%s %s -> %d (%.0f ms)", self.command, urlsplit(self.path).path, status,
                 (time.perf_counter() - started) * 1000)

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - the base class's name
        log.debug(format, *args)


for _method in gateway_responses.ANY_METHODS:  # the methods the deployed API's ANY passes to the function
    setattr(ApiGatewayRequestHandler, f"do_{_method}", ApiGatewayRequestHandler._proxy)


def api_front(port: int, handler: Handler, *, function_name: str, memory_mb: int, timeout_s: float,
              routes: Routes | None = None, authorizers: Mapping[str, Authorizer] | None = None) -> HttpService:
    """The API front for ``handler`` on ``port`` (0: any free port); ``authorizers`` guard resources
    (``{AGENT_PROXY: CognitoAuthorizer(...)}``)."""
    return HttpService("api", ApiGatewayRequestHandler, port, function=handler, function_name=function_name,
                       memory_mb=memory_mb, timeout_s=timeout_s,
                       routes=routes or Routes(PROXY_RESOURCES + AGENT_RESOURCES),
                       authorizers=dict(authorizers or {}), invoke_lock=threading.Lock())

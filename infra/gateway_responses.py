"""What API Gateway answers by itself, in the API's error shape: defined once, for the deployed API
(``infra.constructs.api`` makes each a gateway response) and for the local front
(``infra.local.api_gateway`` answers the same cases with the same status, headers and body).

The deployed API is a LambdaRestApi (proxy): ANY on ``/`` and ``/{proxy+}``, so every path of the
seven methods ANY covers reaches the function, which answers 404/405 itself. API Gateway answers
alone when the request never reaches it: a method ANY does not cover (TRACE, CONNECT, WebDAV's
PROPFIND...: no method matches, which API Gateway reports as MISSING_AUTHENTICATION_TOKEN, a 403
we make a 405), a payload over its 10 MB limit, the stage's throttling, WAF (when enabled), an
authorizer (coming with the agents' routes), and its own failures (a function that crashed or timed
out: DEFAULT_5XX). Any other 4xx or 5xx it could give falls back on DEFAULT_4XX/5XX, which keep
its status and message in our shape.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from functions.api.pages import SECURITY_HEADERS
from functions.api.schemas import ErrorBody

# The methods ANY stands for (API Gateway's Method resource knows no others).
ANY_METHODS = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT")
# The methods our routes answer (tests/integration/test_api.py checks it against /openapi.json).
ALLOWED_METHODS = ("GET", "HEAD", "OPTIONS", "POST", "PUT")
_GATEWAY_MESSAGE = "$context.error.messageString"  # API Gateway's message, already a quoted JSON string
_PLACEHOLDER = "@gateway-message@"


@dataclass(frozen=True)
class GatewayResponse:
    type: str  # API Gateway's response type
    status: int | None  # None: API Gateway's own status (the DEFAULT_* fallbacks keep it)
    code: str
    message: str | None  # None: API Gateway's own message
    extra_headers: tuple[tuple[str, str], ...] = ()

    @property
    def headers(self) -> dict[str, str]:
        """Every header it carries: the security headers every answer of ours has, then its own."""
        return dict(SECURITY_HEADERS) | dict(self.extra_headers)

    def template(self) -> str:
        """The gateway response's body template (a mapping template: JSON, API Gateway's message in it)."""
        body = ErrorBody(error=self.code, message=self.message or _PLACEHOLDER).model_dump_json()
        return body.replace(json.dumps(_PLACEHOLDER), _GATEWAY_MESSAGE)

    def body(self, gateway_message: str = "") -> bytes:
        """The body as API Gateway renders the template (``gateway_message`` for the DEFAULT_* ones)."""
        return ErrorBody(error=self.code, message=self.message or gateway_message).model_dump_json().encode()


METHOD_NOT_ALLOWED = GatewayResponse(
    "MISSING_AUTHENTICATION_TOKEN", 405, "method_not_allowed",
    f"This API answers {', '.join(ALLOWED_METHODS)}.", (("Allow", ", ".join(ALLOWED_METHODS)),))
REQUEST_TOO_LARGE = GatewayResponse("REQUEST_TOO_LARGE", 413, "payload_too_large",
                                    "The request is over API Gateway's 10 MB limit.")
THROTTLED = GatewayResponse("THROTTLED", 429, "rate_limited", "Too many requests; please try again in a moment.",
                            (("Retry-After", "1"),))
WAF_FILTERED = GatewayResponse("WAF_FILTERED", 403, "request_blocked", "This request was blocked by our firewall.")
# API Gateway's own message says which: "Unauthorized" (no valid token) or "The incoming token has expired"
# (the console then refreshes its token).
UNAUTHORIZED = GatewayResponse("UNAUTHORIZED", 401, "unauthorized", None, (("WWW-Authenticate", "Bearer"),))
ACCESS_DENIED = GatewayResponse("ACCESS_DENIED", 403, "forbidden", "You may not do this.")
INTEGRATION_TIMEOUT = GatewayResponse("INTEGRATION_TIMEOUT", 504, "timeout",
                                      "The request took too long; please try again.")
DEFAULT_4XX = GatewayResponse("DEFAULT_4XX", None, "request_refused", None)
DEFAULT_5XX = GatewayResponse("DEFAULT_5XX", None, "internal_error", None)

RESPONSES = (METHOD_NOT_ALLOWED, REQUEST_TOO_LARGE, THROTTLED, WAF_FILTERED, UNAUTHORIZED, ACCESS_DENIED,
             INTEGRATION_TIMEOUT, DEFAULT_4XX, DEFAULT_5XX)

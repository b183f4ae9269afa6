"""The agents' sign-in on the local stack: what Cognito and API Gateway's Cognito authorizer do in the cloud.

- :class:`CognitoAuthorizer` verifies an ID token as the REST API's Cognito user pool authorizer does
  before ``/agent/{proxy+}`` reaches the function, and presents its claims as that authorizer does
  (``requestContext.authorizer.claims``); the API front answers 401 otherwise.
- :func:`cognito_idp` serves the Cognito user pools API (JSON 1.1, ``X-Amz-Target``) on
  ``HELPDESK_COGNITO_PORT``, so curl and the browser console sign in locally exactly as they do at
  ``https://cognito-idp.<region>.amazonaws.com/``: each call goes through boto3 to moto's pool.

moto signs every pool's tokens with one RSA key (``kid`` "dummy") and ships its public JWKS
(``moto/cognitoidp/resources/jwks-public.json.gz``): that is the pool's key set here, and the issuer
(``https://cognito-idp.<region>.amazonaws.com/<pool id>``) tells pools apart.
"""

from __future__ import annotations

import functools
import json
import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler

import boto3
from botocore.exceptions import ClientError, ParamValidationError
from joserfc import jwt
from joserfc.errors import ExpiredTokenError, JoseError
from joserfc.jwk import KeySet

from infra import agent_pool
from infra.local.api_gateway import Unauthorized
from infra.local.services import HttpService

log = logging.getLogger("infra.local")

# API Gateway's messages in its UNAUTHORIZED gateway response (401)
UNAUTHORIZED = "Unauthorized"  # no token, or one that is not a valid ID token of the pool
EXPIRED = "The incoming token has expired"


@functools.cache
def signing_keys() -> KeySet:
    """The public keys moto signs every pool's tokens with (a real pool serves its own at
    ``<issuer>/.well-known/jwks.json``)."""
    from moto.utilities.utils import load_resource

    return KeySet.import_key_set(load_resource("cognitoidp/resources/jwks-public.json"))


def bearer_token(headers: Mapping[str, str]) -> str:
    """The token of the ``Authorization`` header: the raw JWT, or after ``Bearer `` (API Gateway takes both)."""
    value = next((v for k, v in headers.items() if k.lower() == "authorization"), "") or ""
    scheme, _, rest = value.strip().partition(" ")
    return rest.strip() if scheme.lower() == "bearer" else value.strip()


_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def java_date(epoch: object) -> str:
    """``Tue Dec 01 09:00:00 UTC 2026``: how the REST authorizer presents ``exp`` and ``iat`` (Java's
    Date.toString; ``auth_time`` stays a number). Seen in API Gateway's events, e.g.
    github.com/amazon-archives/amazon-cognito-identity-js/issues/92."""
    moment = datetime.fromtimestamp(int(epoch), UTC)
    return (f"{_DAYS[moment.weekday()]} {_MONTHS[moment.month - 1]} {moment.day:02d} "
            f"{moment:%H:%M:%S} UTC {moment.year}")


def api_gateway_claims(claims: Mapping[str, object]) -> dict[str, str]:
    """An ID token's claims as the REST API's Cognito authorizer hands them to the function: every value
    a string, booleans ``"true"``/``"false"``, lists (``cognito:groups``) comma-separated
    (``"L1,billing"``; the HTTP API's JWT authorizer would give ``"[L1 billing]"``: see
    github.com/aws/chalice/issues/783 and aws-solutions-library-samples/guidance-for-claude-code-with-
    amazon-bedrock#802), ``exp``/``iat`` as :func:`java_date`."""
    presented = {}
    for name, value in claims.items():
        if name in ("exp", "iat"):
            presented[name] = java_date(value)
        elif isinstance(value, bool):
            presented[name] = "true" if value else "false"
        elif isinstance(value, list | tuple):
            presented[name] = ",".join(str(v) for v in value)
        else:
            presented[name] = str(value)
    return presented


@dataclass(frozen=True)
class CognitoAuthorizer:
    """What API Gateway checks before an ``/agent/...`` request reaches the function: an ID token
    (``token_use`` id) signed with the pool's key, issued by the pool, not expired; raises
    :class:`Unauthorized` with API Gateway's message otherwise.

    Also the audience: the console's client id. API Gateway's REST authorizer accepts an ID token of
    any app client of the pool; the pool has one client (the console's), so that is the same set.
    """

    user_pool_id: str
    client_id: str
    region: str

    @property
    def issuer(self) -> str:
        return f"https://cognito-idp.{self.region}.amazonaws.com/{self.user_pool_id}"

    def __call__(self, headers: Mapping[str, str]) -> dict[str, str]:
        token = bearer_token(headers)
        if not token:
            raise Unauthorized(UNAUTHORIZED)
        try:
            decoded = jwt.decode(token, signing_keys(), algorithms=["RS256"])
            jwt.JWTClaimsRegistry(
                iss={"essential": True, "value": self.issuer},
                aud={"essential": True, "value": self.client_id},
                token_use={"essential": True, "value": "id"},
                exp={"essential": True},
            ).validate(decoded.claims)
        except ExpiredTokenError:
            raise Unauthorized(EXPIRED) from None
        except (JoseError, ValueError, TypeError):  # bad signature, not a JWT, another pool or client, access token
            raise Unauthorized(UNAUTHORIZED) from None
        return api_gateway_claims(decoded.claims)


# -- the Cognito user pools API ----------------------------------------------------------------------

TARGET_PREFIX = "AWSCognitoIdentityProviderService."
JSON_1_1 = "application/x-amz-json-1.1"
# What a browser console calls without AWS credentials (everything else in Cognito's API needs a signed
# request: use the aws CLI against a deployed pool). USER_SRP_AUTH is refused: moto does not check the
# password proof of SRP, so every password would pass; the console signs in with USER_PASSWORD_AUTH.
ACTIONS = frozenset({
    "InitiateAuth", "RespondToAuthChallenge", "AssociateSoftwareToken", "VerifySoftwareToken",
    "SetUserMFAPreference", "GetUser", "ChangePassword", "GlobalSignOut",
})
_SIGN_IN = {"InitiateAuth": "AuthParameters", "RespondToAuthChallenge": "ChallengeResponses"}


class CognitoStandIn:
    """Cognito's answers for one user pool, through boto3 (so through moto, like every other call)."""

    def __init__(self, user_pool_id: str):
        self.user_pool_id = user_pool_id
        self.client = boto3.client("cognito-idp")

    def call(self, action: str, params: object) -> tuple[int, dict]:
        """(status, JSON body) as Cognito answers ``action``."""
        if action not in ACTIONS:
            return 400, error("UnknownOperationException", f"{action or 'This operation'} is not served by the "
                              f"local Cognito stand-in (it serves {', '.join(sorted(ACTIONS))})")
        if not isinstance(params, dict):
            return 400, error("SerializationException", "The request body must be a JSON object")
        if action == "InitiateAuth" and params.get("AuthFlow") == "USER_SRP_AUTH":
            return 400, error("InvalidParameterException", "USER_SRP_AUTH is not emulated locally (moto does not "
                              "verify the password proof): sign in with USER_PASSWORD_AUTH")
        if action in _SIGN_IN:
            params = self._resolve_alias(params, _SIGN_IN[action])
        try:
            result = self.client._make_api_call(action, params)
        except ParamValidationError as invalid:
            return 400, error("InvalidParameterException", str(invalid))
        except ClientError as failed:
            code, message = failed.response["Error"].get("Code", ""), failed.response["Error"].get("Message", "")
            if code == "UserNotFoundException" and action in _SIGN_IN and agent_pool.PREVENT_USER_EXISTENCE_ERRORS:
                code, message = "NotAuthorizedException", "Incorrect username or password."
            return failed.response["ResponseMetadata"].get("HTTPStatusCode") or 400, error(code, message)
        result.pop("ResponseMetadata", None)
        return 200, result

    def _resolve_alias(self, params: dict, field: str) -> dict:
        """A sign-in by verified email (the pool's alias) or in any letter case (case-insensitive
        usernames), as Cognito resolves them to the username; moto knows usernames only."""
        values = params.get(field)
        if not isinstance(values, dict) or not isinstance(values.get("USERNAME"), str):
            return params
        given = values["USERNAME"].strip().lower()
        username = given
        if "@" in given and '"' not in given and "email" in agent_pool.ALIAS_ATTRIBUTES:
            found = [u for u in self.client.list_users(UserPoolId=self.user_pool_id,
                                                       Filter=f'email = "{given}"')["Users"]
                     if {"Name": "email_verified", "Value": "true"} in u["Attributes"]]
            username = found[0]["Username"] if len(found) == 1 else given
        return {**params, field: {**values, "USERNAME": username}}


def error(code: str, message: str) -> dict:
    return {"__type": code, "message": message}


class CognitoRequestHandler(BaseHTTPRequestHandler):
    """Reads ``self.server.cognito`` (a :class:`CognitoStandIn`)."""

    protocol_version = "HTTP/1.1"

    def do_OPTIONS(self) -> None:  # noqa: N802 - the base class's naming
        """CORS preflight: Cognito's API is called cross-origin by every browser app."""
        requested = self.headers.get("Access-Control-Request-Headers", "content-type,x-amz-target,x-amz-user-agent")
        self._reply(200, b"", [("Access-Control-Allow-Methods", "POST"), ("Access-Control-Allow-Headers", requested),
                               ("Access-Control-Max-Age", "86400")])

    def do_POST(self) -> None:  # noqa: N802
        target = self.headers.get("X-Amz-Target", "")
        action = target[len(TARGET_PREFIX):] if target.startswith(TARGET_PREFIX) else ""
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            params = json.loads(raw or b"{}")
        except ValueError:
            status, body = 400, error("SerializationException", "The request body is not JSON")
        else:
            status, body = self.server.cognito.call(action, params)
        headers = [("x-amzn-ErrorType", body["__type"])] if status >= 400 else []
        self._reply(status, json.dumps(body, default=_json_default).encode(), headers)
        log.info("cognito-idp %s -> %d", action or target or "?", status)

    def _reply(self, status: int, payload: bytes, headers: list[tuple[str, str]]) -> None:
        self.send_response_only(status)
        self.send_header("Date", self.date_time_string())
        self.send_header("Content-Type", JSON_1_1)
        self.send_header("x-amzn-RequestId", str(uuid.uuid4()))
        self.send_header("Access-Control-Allow-Origin", "*")
        self.send_header("Access-Control-Expose-Headers", "x-amzn-RequestId,x-amzn-ErrorType,x-amzn-ErrorMessage,Date")
        for key, value in headers:
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - the base class's name
        log.debug(format, *args)


def _json_default(value: object) -> object:
    if isinstance(value, datetime):
        return value.timestamp()  # JSON 1.1 timestamps are epoch seconds
    raise TypeError(f"{type(value).__name__} is not JSON")


def cognito_idp(port: int, user_pool_id: str) -> HttpService:
    """The Cognito user pools API for ``user_pool_id`` on ``port`` (0: any free port)."""
    return HttpService("cognito", CognitoRequestHandler, port, cognito=CognitoStandIn(user_pool_id))

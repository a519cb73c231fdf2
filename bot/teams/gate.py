"""The door of `POST /api/messages`: the activity is trusted only as far as its token says.

1. The Bot Framework token (the SDK's JWT validator, with issuer validation on) must be signed by
   a published key, carry a `kid`, be for this bot (audience) and come from Bot Framework or from
   this bot's own Entra tenant (issuer). Anything else, a missing `kid` included, is 401.
2. Only then is the body read. The activity's `serviceUrl` (where the bot will send its answer,
   with its own Bot Connector token) must equal the token's `serviceurl` claim where the token has
   one (401 otherwise), and must be on the allow-list of Bot Connector hosts (403 otherwise).
3. The tenant is the token's (`tid`), or the configured one for Bot Framework tokens that carry
   none; every tenant the activity names must be that one (403 otherwise). A body that is not a
   JSON object is 400.

With TEAMS_ALLOW_ANONYMOUS (local development only) step 1 is skipped; steps 2 and 3 still hold.
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
import threading
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from jwt import PyJWK, PyJWKClient, get_unverified_header
from microsoft_agents.activity import Activity
from microsoft_agents.hosting.core import AgentAuthConfiguration
from microsoft_agents.hosting.core.authorization import ClaimsIdentity
from microsoft_agents.hosting.core.authorization.authentication_constants import AuthenticationConstants as C
from microsoft_agents.hosting.core.authorization.jwt import JwtTokenValidator
from yarl import URL

from bot.config import Settings
from bot.inbound import scrub, text_at

log = logging.getLogger(__name__)

ENTRA_KEYS_PREFIX = "https://login.microsoftonline.com/"


@dataclass(frozen=True)
class Admitted:
    activity: dict[str, Any]
    identity: ClaimsIdentity
    tenant: str


@dataclass(frozen=True)
class Refused:
    status: int
    reason: str

    def response(self) -> web.Response:
        return web.json_response({"error": self.reason}, status=self.status)


class _SigningKeys:
    """The signing keys the SDK's validator asks for, fetched from where this deployment says
    Microsoft's key endpoints are (the public cloud by default; a sandbox's fake in tests)."""

    def __init__(self, bot_framework_keys: str, login_url: str):
        self.bot_framework_keys = bot_framework_keys
        self.login_url = login_url.rstrip("/") + "/"
        self._clients: dict[str, tuple[PyJWKClient, threading.Lock]] = {}

    def where(self, jwks_uri: str) -> str:
        if jwks_uri == C.PUBLIC_ABS_JWKS_URL:
            return self.bot_framework_keys
        if jwks_uri.startswith(ENTRA_KEYS_PREFIX):
            return self.login_url + jwks_uri.removeprefix(ENTRA_KEYS_PREFIX)
        return jwks_uri

    async def get_signing_key(self, jwks_uri: str, header: dict[str, Any]) -> PyJWK:
        url = self.where(jwks_uri)
        if url not in self._clients:
            client = PyJWKClient(
                url, cache_keys=True, lifespan=3600, timeout=10, ssl_context=ssl.create_default_context()
            )
            self._clients[url] = (client, threading.Lock())
        client, lock = self._clients[url]

        def fetch() -> PyJWK:
            with lock:  # one fetch at a time per endpoint; PyJWKClient caches what it got
                return client.get_signing_key(header[C.KEY_ID_HEADER])

        return await asyncio.to_thread(fetch)


class _Validator(JwtTokenValidator):
    def __init__(self, configuration: AgentAuthConfiguration, keys: _SigningKeys):
        super().__init__(configuration)
        self._jwk_client_manager = keys  # type: ignore[assignment]


def _origin(url: str) -> tuple[str, str, int] | None:
    """(scheme, host, port) of an absolute URL without credentials, or None."""
    try:
        u = URL(url)
    except (ValueError, TypeError):
        return None
    if not u.is_absolute() or u.user or u.password or not u.host or u.scheme not in ("https", "http"):
        return None
    return u.scheme, u.host.lower().rstrip("."), u.port or (443 if u.scheme == "https" else 80)


def _shown(url: str) -> str:
    """An activity's serviceUrl as an operator would add it to TEAMS_SERVICE_URLS: scheme, host, port."""
    origin = _origin(url)
    if origin is None:
        return "(not a URL)"
    scheme, host, port = origin
    default = 443 if scheme == "https" else 80
    return f"{scheme}://{host}" + (f":{port}" if port != default else "")


def _same_url(a: str, b: str) -> bool:
    def norm(url: str) -> tuple[Any, ...] | None:
        origin = _origin(url)
        return None if origin is None else (*origin, URL(url).path.rstrip("/").lower())

    na, nb = norm(a), norm(b)
    return na is not None and na == nb


class TeamsGate:
    def __init__(self, settings: Settings, auth: AgentAuthConfiguration):
        self.app_id = settings.teams_app_id or ""
        self.tenant = (settings.teams_tenant_id or "").lower()
        self.anonymous = settings.teams_allow_anonymous
        self.allowed = [o for o in (_origin(u) for u in settings.teams_service_urls) if o is not None]
        login = settings.teams_login_url.rstrip("/")
        self.issuers = {
            C.AGENTS_SDK_TOKEN_ISSUER,
            C.VALID_TOKEN_ISSUER_URL_TEMPLATE_V1.format(self.tenant),
            C.VALID_TOKEN_ISSUER_URL_TEMPLATE_V2.format(self.tenant),
            f"{login}/{self.tenant}/v2.0",
        }
        checking = AgentAuthConfiguration(
            client_id=auth.CLIENT_ID,
            tenant_id=auth.TENANT_ID,
            anonymous_allowed=False,
            issuers=sorted(self.issuers),
            validate_issuer=True,
        )
        self.validator = _Validator(checking, _SigningKeys(settings.teams_bot_framework_keys_url, login))

    async def admit(self, request: web.Request) -> Admitted | Refused:
        identity = ClaimsIdentity()  # anonymous: local development only
        if not self.anonymous:
            checked = await self._token(request.headers.get("Authorization"))
            if isinstance(checked, Refused):
                return checked
            identity = checked
        try:
            activity = json.loads(await request.read())
        except (ValueError, UnicodeDecodeError):
            return Refused(400, "the body is not JSON")
        if not isinstance(activity, dict):
            return Refused(400, "the body is not an activity")
        activity = scrub(activity)
        shape = _shape_problem(activity)
        if shape is not None:
            return Refused(400, shape)
        service_url = activity.get("serviceUrl")
        if not isinstance(service_url, str) or _origin(service_url) is None:
            return Refused(400, "the activity has no valid serviceUrl")
        claimed = _claim(identity, C.SERVICE_URL_CLAIM)
        if claimed is not None and not _same_url(claimed, service_url):
            return Refused(401, "the activity's serviceUrl is not the one its token was issued for")
        if _origin(service_url) not in self.allowed:
            return Refused(
                403,
                f"the activity's serviceUrl {_shown(service_url)} is not an allowed Bot Connector host: add it to "
                "TEAMS_SERVICE_URLS if it is yours (the Agents Playground's, say)",
            )
        token_tenant = _claim(identity, C.TENANT_ID_CLAIM)
        if token_tenant is not None and token_tenant.lower() != self.tenant:
            return Refused(403, "the token is for another tenant")
        named = {t.lower() for t in _tenants(activity)}
        if not named:
            return Refused(400, "the activity names no tenant")
        if named != {self.tenant}:
            return Refused(403, "the activity is from another tenant")
        return Admitted(activity=activity, identity=identity, tenant=self.tenant)

    async def _token(self, header: str | None) -> ClaimsIdentity | Refused:
        parts = (header or "").split()
        if len(parts) != 2 or parts[0].lower() != "bearer":
            return Refused(401, "a Bot Framework token is required")
        token = parts[1]
        try:
            unverified = get_unverified_header(token)
        except Exception:  # PyJWT raises several kinds for garbage; all of them mean "no"
            return Refused(401, "the token is not a JWT")
        if not isinstance(unverified.get(C.KEY_ID_HEADER), str) or unverified.get("alg") != "RS256":
            return Refused(401, "the token names no signing key")
        try:
            identity = await self.validator.validate_token(token)
        except Exception as exc:  # bad signature, expiry, audience, issuer, unknown key, keys unreachable
            log.warning("Teams token refused: %s", type(exc).__name__)
            return Refused(401, "the token is not valid for this bot")
        issuer = _claim(identity, C.ISSUER_CLAIM)
        if issuer not in self.issuers:
            return Refused(401, "the token's issuer is neither Bot Framework nor this bot's tenant")
        return identity


def _shape_problem(activity: dict[str, Any]) -> str | None:
    """Why this is not an activity Teams would send (checked with the SDK's own schema), or None."""
    for path in (("type",), ("from", "id"), ("conversation", "id")):
        value = text_at(activity, *path)
        if not value or len(value) > 1024:
            return f"the activity has no valid {'.'.join(path)}"
    try:
        Activity.model_validate(activity)
    except Exception as exc:  # pydantic's ValidationError, and the SDK's own consistency checks
        return f"the activity does not fit the Activity schema ({type(exc).__name__})"
    return None


def _claim(identity: ClaimsIdentity, name: str) -> str | None:
    claims = identity.claims or {}
    for key, value in claims.items():
        if key.lower() == name and isinstance(value, str):
            return value
    return None


def _tenants(activity: dict[str, Any]) -> list[str]:
    found = [
        text_at(activity, "conversation", "tenantId"),
        text_at(activity, "channelData", "tenant", "id"),
    ]
    return [t for t in found if t]

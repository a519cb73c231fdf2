"""A fake of Microsoft's sign-in services on 127.0.0.1 (https), for the tests, the demo and the benches.

Both directions of Teams' authentication go through it:
- **Into the bot.** Teams signs every request to a bot with a JWT: Bot Framework's keys for tokens it
  issues (`iss` https://api.botframework.com), Entra's keys for tokens from the bot's own tenant.
  This serves both key sets (JWKS, as Microsoft's endpoints do) and mints tokens with them for the
  simulator; and, on demand, what an attacker would send: tokens signed with a key nobody published,
  for another tenant or issuer, without a `kid`, expired.
- **Out of the bot.** The Agents SDK's MSAL client asks Entra for a Bot Connector token with the bot's
  client secret (OpenID discovery, then the client-credentials grant). This answers both, for the
  registered app and secret only, and the fake connector accepts only the tokens it issued.

Point a bot at it with TEAMS_LOGIN_URL=`login_url` and TEAMS_BOT_FRAMEWORK_KEYS_URL=`bot_framework_keys_url`,
and trust its certificate authority (`tls.trust_env()`): MSAL talks to https authorities only.
"""

from __future__ import annotations

import base64
import time
import uuid
from dataclasses import dataclass
from typing import Any

import jwt
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import rsa

from bot.sandbox.tls import LoopbackTLS, loopback_tls
from bot.sandbox.watch import Watched, serve_on_loopback

BOT_FRAMEWORK_ISSUER = "https://api.botframework.com"
BOT_CONNECTOR_SCOPE = "https://api.botframework.com/.default"
CONNECTOR_AUDIENCE = "https://api.botframework.com"


def _b64(n: int) -> str:
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


class SigningKey:
    def __init__(self, kid: str):
        self.kid = kid
        self.private = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def jwk(self, **extra: Any) -> dict[str, Any]:
        numbers = self.private.public_key().public_numbers()
        return {"kty": "RSA", "use": "sig", "kid": self.kid, "n": _b64(numbers.n), "e": _b64(numbers.e), **extra}


@dataclass
class TokenRequest:
    tenant: str
    client_id: str
    scope: str
    granted: bool
    at: float


class FakeLogin(Watched):
    def __init__(self, *, tenant: str, app_id: str, app_secret: str | None = None, tls: LoopbackTLS | None = None):
        super().__init__()
        self.tenant = tenant.lower()
        self.app_id = app_id
        self.app_secret = app_secret
        self.tls = tls or loopback_tls()
        self.bot_framework = SigningKey("bf-key-1")
        self.entra = SigningKey("entra-key-1")
        self.rogue = SigningKey("bf-key-1")  # same kid as a real key, never published
        self.key_fetches = 0
        self.token_requests: list[TokenRequest] = []
        self.issued: set[str] = set()  # ids (jti) of the connector tokens handed out
        self._runner: web.AppRunner | None = None
        self.port = 0

    async def start(self) -> FakeLogin:
        app = web.Application()
        app.router.add_get("/botframework/v1/.well-known/keys", self._bot_framework_keys)
        app.router.add_get("/{tenant}/discovery/v2.0/keys", self._entra_keys)
        app.router.add_get("/{tenant}/v2.0/.well-known/openid-configuration", self._openid)
        app.router.add_post("/{tenant}/oauth2/v2.0/token", self._token)
        self._runner, self.port = await serve_on_loopback(app, ssl_context=self.tls.server_context())
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def login_url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def bot_framework_keys_url(self) -> str:
        return f"{self.login_url}/botframework/v1/.well-known/keys"

    def entra_issuer(self, tenant: str | None = None) -> str:
        return f"{self.login_url}/{(tenant or self.tenant).lower()}/v2.0"

    # ---- Microsoft's endpoints ---------------------------------------------------

    async def _bot_framework_keys(self, request: web.Request) -> web.Response:
        self.key_fetches += 1
        await self._notify()
        return web.json_response({"keys": [self.bot_framework.jwk(endorsements=["msteams"])]})

    async def _entra_keys(self, request: web.Request) -> web.Response:
        self.key_fetches += 1
        await self._notify()
        if request.match_info["tenant"].lower() != self.tenant:
            return web.json_response({"error": "invalid_tenant"}, status=400)
        return web.json_response({"keys": [self.entra.jwk()]})

    async def _openid(self, request: web.Request) -> web.Response:
        tenant = request.match_info["tenant"].lower()
        if tenant != self.tenant:
            return web.json_response({"error": "invalid_tenant", "error_description": "AADSTS90002"}, status=400)
        base = f"{self.login_url}/{tenant}"
        return web.json_response(
            {
                "issuer": self.entra_issuer(tenant),
                "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                "token_endpoint": f"{base}/oauth2/v2.0/token",
                "jwks_uri": f"{base}/discovery/v2.0/keys",
                "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
            }
        )

    async def _token(self, request: web.Request) -> web.Response:
        """The client-credentials grant, as Entra answers it (AADSTS errors included)."""
        form = await request.post()
        tenant = request.match_info["tenant"].lower()
        client_id, secret = str(form.get("client_id") or ""), str(form.get("client_secret") or "")
        auth = request.headers.get("Authorization", "")
        if auth.startswith("Basic "):
            client_id, _, secret = base64.b64decode(auth[6:]).decode().partition(":")
        scope = str(form.get("scope") or "")
        error: tuple[str, str] | None = None
        if tenant != self.tenant:
            error = ("invalid_request", "AADSTS90002: Tenant not found.")
        elif form.get("grant_type") != "client_credentials":
            error = ("unsupported_grant_type", "AADSTS70003")
        elif client_id != self.app_id:
            error = ("unauthorized_client", "AADSTS700016: Application not found in the directory.")
        elif self.app_secret is not None and secret != self.app_secret:
            error = ("invalid_client", "AADSTS7000215: Invalid client secret provided.")
        elif BOT_CONNECTOR_SCOPE not in scope.split():
            error = ("invalid_scope", "AADSTS70011: The provided value for scope is not valid.")
        self.token_requests.append(TokenRequest(tenant, client_id, scope, error is None, time.monotonic()))
        await self._notify()
        if error is not None:
            return web.json_response({"error": error[0], "error_description": error[1]}, status=400)
        now = int(time.time())
        jti = uuid.uuid4().hex
        self.issued.add(jti)
        token = jwt.encode(
            {
                "iss": self.entra_issuer(),
                "aud": CONNECTOR_AUDIENCE,
                "appid": client_id,
                "azp": client_id,
                "tid": self.tenant,
                "iat": now,
                "nbf": now,
                "exp": now + 3600,
                "jti": jti,
            },
            self.entra.private,
            algorithm="RS256",
            headers={"kid": self.entra.kid},
        )
        return web.json_response(
            {"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599, "access_token": token}
        )

    def connector_token_problem(self, authorization: str | None) -> str | None:
        """What is wrong with the bearer token a connector call carries, or None: it must be one this
        service issued for the Bot Connector, unexpired, to the registered app."""
        scheme, _, token = (authorization or "").partition(" ")
        if scheme != "Bearer" or not token:
            return "no bearer token"
        try:
            claims = jwt.decode(
                token,
                self.entra.private.public_key(),
                algorithms=["RS256"],
                audience=CONNECTOR_AUDIENCE,
                issuer=self.entra_issuer(),
            )
        except jwt.PyJWTError as exc:
            return f"token refused: {type(exc).__name__}"
        if claims.get("appid") != self.app_id or claims.get("jti") not in self.issued:
            return "token not issued to this bot"
        return None

    # ---- tokens for the simulator (Teams -> bot) -------------------------------------

    def token(
        self,
        *,
        service_url: str | None,
        issuer: str = "botframework",
        key: SigningKey | None = None,
        audience: str | None = None,
        tenant: str | None = None,
        lifetime: int = 3600,
        kid: str | bool = True,
        **claims: Any,
    ) -> str:
        """A token as Teams would send it. `issuer` is "botframework", "entra" (this tenant, or
        `tenant`'s) or any issuer URL; `kid=False` leaves the key id out of the header."""
        now = int(time.time())
        if issuer == "botframework":
            iss, signer = BOT_FRAMEWORK_ISSUER, self.bot_framework
        elif issuer == "entra":
            iss, signer = self.entra_issuer(tenant), self.entra
        else:
            iss, signer = issuer, self.entra
        signer = key or signer
        payload: dict[str, Any] = {
            "iss": iss,
            "aud": audience or self.app_id,
            "iat": now - 5,
            "nbf": now - 5,
            "exp": now + lifetime,
            "jti": uuid.uuid4().hex,
        }
        if service_url is not None:
            payload["serviceurl"] = service_url
        if issuer == "entra" or tenant is not None:
            payload["tid"] = (tenant or self.tenant).lower()
        payload.update(claims)
        headers: dict[str, Any] = {}
        if kid is True:
            headers["kid"] = signer.kid
        elif isinstance(kid, str):
            headers["kid"] = kid
        return jwt.encode(payload, signer.private, algorithm="RS256", headers=headers or None)

"""SMART authorization server built on authlib (RFC 6749, RFC 7636, SMART App Launch 2.2).

* :class:`SmartAuthorizationServer` — authlib's Flask ``AuthorizationServer``
  with SMART scope grammar validation and a SMART token response.
* :class:`SmartAuthorizationCodeGrant` + :class:`S256CodeChallenge` (PKCE S256
  required, ``plain`` refused; missing/wrong ``code_verifier`` -> ``invalid_grant``).
* :class:`SmartRefreshTokenGrant` — rotating refresh tokens (old one revoked).
* :class:`OAuthStore` — thread-safe in-memory codes and tokens.
* OpenID Connect: an ``id_token`` (:mod:`sandbox.oidc`) when ``openid`` is granted.
* ``private_key_jwt`` client authentication (:mod:`sandbox.client_auth`).
* Client registrations: ``clients.json`` plus the ``CLIENTS``, ``CLIENT_JWKS`` and
  ``CLIENT_JWKS_URIS`` config overrides (:func:`apply_client_overrides`).

Tokens are opaque (``secrets.token_urlsafe``); nothing here logs them.
"""

from __future__ import annotations

import dataclasses
import json
import secrets
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from authlib.integrations.flask_oauth2 import AuthorizationServer
from authlib.oauth2.rfc6749 import AuthorizationCodeMixin, ClientMixin, TokenMixin
from authlib.oauth2.rfc6749.errors import InvalidGrantError, InvalidRequestError, InvalidScopeError
from authlib.oauth2.rfc6749.grants import AuthorizationCodeGrant, RefreshTokenGrant
from authlib.oauth2.rfc7636 import CodeChallenge

from . import clock
from .client_auth import PRIVATE_KEY_JWT, ClientKeyError, ClientKeys, PrivateKeyJwtAuth, import_jwks
from .config import env_client_name
from .launches import LaunchContext
from .oidc import SigningKeys, build_id_token, load_private_key_setting
from .scopes import ScopeError, narrow_scope, validate_scope

REFRESH_SCOPES = ("offline_access", "online_access")
DEMO_PRACTITIONER = "Practitioner/dr-demo"
TOKEN_ENDPOINT_AUTH_METHODS = [PRIVATE_KEY_JWT, "client_secret_basic", "none"]


# --------------------------------------------------------------------------- clients
@dataclass
class Client(ClientMixin):
    """A registered SMART client.

    ``token_endpoint_auth_method``: ``none`` (public), ``client_secret_basic`` (confidential
    symmetric, ``client_secret``) or ``private_key_jwt`` (confidential asymmetric, public keys in
    ``jwks`` or at ``jwks_uri``). ``access_token_lifetime``: seconds, overrides
    ``ACCESS_TOKEN_LIFETIME`` for this client (a launch's own option wins).
    """

    client_id: str
    client_name: str
    token_endpoint_auth_method: str
    redirect_uris: list[str]
    grant_types: list[str]
    response_types: list[str]
    client_secret: str | None = None
    jwks: dict | None = None
    jwks_uri: str | None = None
    access_token_lifetime: int | None = None

    def __post_init__(self):
        if self.token_endpoint_auth_method not in TOKEN_ENDPOINT_AUTH_METHODS:
            raise ValueError(f"client {self.client_id}: unsupported token_endpoint_auth_method")
        if self.token_endpoint_auth_method == PRIVATE_KEY_JWT:
            if (self.jwks is None) == (self.jwks_uri is None):
                raise ValueError(f"client {self.client_id}: private_key_jwt needs exactly one of jwks, jwks_uri")
            if self.jwks is not None:
                try:
                    import_jwks(self.jwks)
                except ClientKeyError as exc:
                    raise ValueError(f"client {self.client_id}: {exc}") from None
        if self.access_token_lifetime is not None and int(self.access_token_lifetime) < 0:
            raise ValueError(f"client {self.client_id}: access_token_lifetime must be >= 0")

    def get_client_id(self):
        return self.client_id

    def get_default_redirect_uri(self):
        return None  # SMART: redirect_uri is always required

    def get_allowed_scope(self, scope):
        return scope

    def check_redirect_uri(self, redirect_uri):
        return redirect_uri in self.redirect_uris  # exact string match

    def check_client_secret(self, client_secret):
        return bool(self.client_secret) and secrets.compare_digest(self.client_secret, client_secret or "")

    def check_endpoint_auth_method(self, method, endpoint):
        return method == self.token_endpoint_auth_method

    def check_response_type(self, response_type):
        return response_type in self.response_types

    def check_grant_type(self, grant_type):
        return grant_type in self.grant_types


def load_clients(path: str | Path, app_origin: str) -> dict[str, Client]:
    """Read the clients file; ``{app_origin}`` in redirect URIs is replaced by *app_origin*.

    Raises ``OSError``/``ValueError`` for a missing or malformed file.
    """
    with open(path, encoding="utf-8") as handle:
        data = json.load(handle)
    return {client.client_id: client for client in (_client_from(entry, app_origin) for entry in data["clients"])}


def _client_from(entry: Mapping[str, Any], app_origin: str) -> Client:
    entry = dict(entry)
    entry["redirect_uris"] = [uri.replace("{app_origin}", app_origin) for uri in entry["redirect_uris"]]
    if entry.get("jwks_uri"):
        entry["jwks_uri"] = entry["jwks_uri"].replace("{app_origin}", app_origin)
    return Client(**entry)


def apply_client_overrides(clients: Mapping[str, Client], settings: Mapping[str, Any]) -> dict[str, Client]:
    """Registrations after the config overrides.

    ``CLIENTS``: entries shaped like ``clients.json`` ones, added or replacing by ``client_id``.
    ``CLIENT_JWKS`` / ``CLIENT_JWKS_URIS``: ``{client_id: JWK Set}`` / ``{client_id: url}`` (keys
    compared as :func:`sandbox.config.env_client_name`), replacing a ``private_key_jwt``
    client's key source. Raises ``ValueError`` for a bad entry.
    """
    result = dict(clients)
    for entry in settings.get("CLIENTS") or []:
        client = _client_from(entry, settings["APP_ORIGIN"])
        result[client.client_id] = client
    jwks, uris = settings.get("CLIENT_JWKS") or {}, settings.get("CLIENT_JWKS_URIS") or {}
    for client_id, client in list(result.items()):
        name = env_client_name(client_id)
        if name in jwks:
            result[client_id] = dataclasses.replace(client, jwks=jwks[name], jwks_uri=None)
        elif name in uris:
            result[client_id] = dataclasses.replace(client, jwks=None, jwks_uri=uris[name])
    known = {env_client_name(c) for c in result}
    for name in set(jwks) | set(uris):
        if name not in known:
            raise ValueError(f"CLIENT_JWKS / CLIENT_JWKS_URIS name an unknown client ({name})")
    return result


# --------------------------------------------------------------------------- models
@dataclass(frozen=True)
class AuthorizedUser:
    """The signed-in demo clinician plus the launch context being authorized."""

    context: LaunchContext
    fhir_user: str = DEMO_PRACTITIONER
    auth_time: float = field(default_factory=clock.now)

    def get_user_id(self):
        return self.fhir_user


@dataclass
class AuthorizationCode(AuthorizationCodeMixin):
    """A pending authorization code (single use, ``CODE_LIFETIME`` seconds)."""

    code: str
    client_id: str
    redirect_uri: str
    scope: str
    code_challenge: str
    code_challenge_method: str
    user: AuthorizedUser
    issued_at: float
    nonce: str | None = None

    def get_redirect_uri(self):
        return self.redirect_uri

    def get_scope(self):
        return self.scope


@dataclass
class TokenRecord(TokenMixin):
    """An issued access token (and its refresh token, if any) bound to a launch context."""

    access_token: str
    client_id: str
    scope: str
    expires_in: int
    issued_at: float
    user: AuthorizedUser
    refresh_token: str | None = None
    refresh_expires_at: float | None = None
    refresh_revoked: bool = False

    @property
    def context(self) -> LaunchContext:
        return self.user.context

    def check_client(self, client):
        return client.get_client_id() == self.client_id

    def get_scope(self):
        return self.scope

    def get_expires_in(self):
        return self.expires_in

    def is_expired(self):
        return clock.now() >= self.issued_at + self.expires_in

    def is_revoked(self):
        return False

    def get_user(self):
        return self.user

    def get_client(self):
        return None


# --------------------------------------------------------------------------- storage
class OAuthStore:
    """Thread-safe in-memory storage of codes, access tokens and refresh tokens."""

    def __init__(self, code_lifetime: int, refresh_lifetime: int):
        self.code_lifetime = code_lifetime
        self.refresh_lifetime = refresh_lifetime
        self._lock = threading.Lock()
        self._codes: dict[str, AuthorizationCode] = {}
        self._access: dict[str, TokenRecord] = {}
        self._refresh: dict[str, TokenRecord] = {}

    def save_code(self, code: AuthorizationCode) -> None:
        with self._lock:
            self._codes[code.code] = code

    def find_code(self, code: str, client_id: str) -> AuthorizationCode | None:
        """Code if it exists, belongs to *client_id* and is younger than ``CODE_LIFETIME``."""
        with self._lock:
            item = self._codes.get(code)
        if item is None or item.client_id != client_id:
            return None
        if clock.now() - item.issued_at > self.code_lifetime:
            return None
        return item

    def delete_code(self, code: str) -> None:
        with self._lock:
            self._codes.pop(code, None)

    def save_token(self, record: TokenRecord) -> None:
        with self._lock:
            self._access[record.access_token] = record
            if record.refresh_token:
                self._refresh[record.refresh_token] = record

    def find_access_token(self, access_token: str) -> TokenRecord | None:
        """Valid (known, unexpired) access token record, else None (RFC 6750 ``invalid_token``)."""
        with self._lock:
            record = self._access.get(access_token)
        if record is None or record.is_expired():
            return None
        return record

    def find_refresh_token(self, refresh_token: str) -> TokenRecord | None:
        """Usable refresh token record: known, not rotated away, unexpired, no ``refresh_fails`` fault."""
        with self._lock:
            record = self._refresh.get(refresh_token)
        if record is None or record.refresh_revoked or record.context.faults.refresh_fails:
            return None
        if record.refresh_expires_at is not None and clock.now() >= record.refresh_expires_at:
            return None
        return record

    def revoke_refresh_token(self, record: TokenRecord) -> None:
        with self._lock:
            record.refresh_revoked = True

    def issued_tokens(self) -> list[TokenRecord]:
        """Every access token record issued so far (expired ones included): what the tests compare leaks with."""
        with self._lock:
            return list(self._access.values())


# --------------------------------------------------------------------------- grants
class S256CodeChallenge(CodeChallenge):
    """PKCE (RFC 7636) with ``S256`` only, as SMART App Launch 2.2 requires.

    Authorization request: missing ``code_challenge`` or a method other than
    ``S256`` (``plain`` or absent) -> ``invalid_request``. Token request:
    missing or non-matching ``code_verifier`` -> ``invalid_grant`` (RFC 7636 §4.6).
    """

    SUPPORTED_CODE_CHALLENGE_METHOD = ["S256"]
    DEFAULT_CODE_CHALLENGE_METHOD = "S256"

    def validate_code_challenge(self, grant, redirect_uri):
        data = grant.request.payload.data
        if not data.get("code_challenge"):
            raise InvalidRequestError("PKCE is required: missing 'code_challenge'")
        if data.get("code_challenge_method") != "S256":
            raise InvalidRequestError("'code_challenge_method' must be 'S256' ('plain' is not accepted)")
        super().validate_code_challenge(grant, redirect_uri)

    def validate_code_verifier(self, grant, result):
        if not grant.request.form.get("code_verifier"):
            raise InvalidGrantError(description="Missing 'code_verifier'")
        try:
            super().validate_code_verifier(grant, result)
        except InvalidRequestError as error:
            raise InvalidGrantError(description=error.description) from None


class SmartAuthorizationCodeGrant(AuthorizationCodeGrant):
    """Authorization code grant storing the SMART launch context with the code."""

    TOKEN_ENDPOINT_AUTH_METHODS = TOKEN_ENDPOINT_AUTH_METHODS

    def save_authorization_code(self, code, request):
        user: AuthorizedUser = request.user
        scope = request.scope
        if user.context.faults.narrow_scope:
            scope = narrow_scope(scope)
        data = request.payload.data
        self.server.store.save_code(
            AuthorizationCode(
                code=code,
                client_id=request.client.get_client_id(),
                redirect_uri=request.payload.redirect_uri,
                scope=scope,
                code_challenge=data.get("code_challenge"),
                code_challenge_method=data.get("code_challenge_method"),
                user=user,
                issued_at=clock.now(),
                nonce=data.get("nonce"),
            )
        )

    def query_authorization_code(self, code, client):
        return self.server.store.find_code(code, client.get_client_id())

    def delete_authorization_code(self, authorization_code):
        self.server.store.delete_code(authorization_code.code)

    def authenticate_user(self, authorization_code):
        return authorization_code.user


class SmartRefreshTokenGrant(RefreshTokenGrant):
    """Refresh grant with rotation: each use returns a new refresh token and revokes the old one."""

    TOKEN_ENDPOINT_AUTH_METHODS = TOKEN_ENDPOINT_AUTH_METHODS
    INCLUDE_NEW_REFRESH_TOKEN = True

    def authenticate_refresh_token(self, refresh_token):
        return self.server.store.find_refresh_token(refresh_token)

    def authenticate_user(self, refresh_token):
        return refresh_token.user

    def revoke_old_credential(self, refresh_token):
        self.server.store.revoke_refresh_token(refresh_token)


# --------------------------------------------------------------------------- server
class SmartAuthorizationServer(AuthorizationServer):
    """authlib authorization server with SMART scope checks and SMART token responses.

    ``config`` keys used: ``ACCESS_TOKEN_LIFETIME``, ``REFRESH_TOKEN_LIFETIME``,
    ``PUBLIC_BASE_URL`` (issuer, ``smart_style_url``, token endpoint = client-assertion
    ``aud``), ``ID_TOKEN_*``, ``CLIENTS``, ``CLIENT_JWKS``, ``CLIENT_JWKS_URIS``, ``JWKS_URI_*``.
    """

    def __init__(self, app, clients: Mapping[str, Client], store: OAuthStore, config: Mapping[str, Any]):
        self.settings = dict(config)
        self.clients = apply_client_overrides(clients, self.settings)
        self.store = store
        self.issuer = self.settings["PUBLIC_BASE_URL"]
        self.token_endpoint = self.issuer + "/oauth2/token"
        self.signing_keys = SigningKeys(load_private_key_setting(self.settings.get("ID_TOKEN_PRIVATE_KEY")))
        super().__init__(app, query_client=self.clients.get, save_token=self._save_token)
        self.register_token_generator("default", self._generate_token)
        self.private_key_jwt = PrivateKeyJwtAuth(self.token_endpoint, ClientKeys(self.settings))
        self.register_client_auth_method(PRIVATE_KEY_JWT, self.private_key_jwt)
        self.register_grant(SmartAuthorizationCodeGrant, [S256CodeChallenge(required=True)])
        self.register_grant(SmartRefreshTokenGrant)

    def access_token_lifetime(self, client: Client, context: LaunchContext) -> int:
        """Launch option ``access_token_lifetime``, else the client's, else ``ACCESS_TOKEN_LIFETIME``."""
        for value in (context.access_token_lifetime, client.access_token_lifetime):
            if value is not None:
                return int(value)
        return int(self.settings["ACCESS_TOKEN_LIFETIME"])

    def validate_requested_scope(self, scope):
        """SMART scope grammar (see :mod:`sandbox.scopes`); malformed -> ``invalid_scope``."""
        try:
            validate_scope(scope)
        except ScopeError as error:
            raise InvalidScopeError(description=str(error)) from None

    def _generate_token(self, grant_type, client, user=None, scope=None, expires_in=None, include_refresh_token=True):
        token = {
            "token_type": "Bearer",
            "access_token": secrets.token_urlsafe(32),
            "expires_in": self.access_token_lifetime(client, user.context),
            "scope": scope,
        }
        if include_refresh_token and any(s in (scope or "").split() for s in REFRESH_SCOPES):
            token["refresh_token"] = secrets.token_urlsafe(48)
        return token

    def _save_token(self, token: dict, request) -> None:
        user: AuthorizedUser = request.user
        context = user.context
        if context.faults.expired_token and request.payload.grant_type == "authorization_code":
            token["expires_in"] = 0  # only the first token; a refresh recovers
        now = clock.now()
        refresh_token = token.get("refresh_token")
        self.store.save_token(
            TokenRecord(
                access_token=token["access_token"],
                client_id=request.client.get_client_id(),
                scope=token["scope"],
                expires_in=token["expires_in"],
                issued_at=now,
                user=user,
                refresh_token=refresh_token,
                refresh_expires_at=now + int(self.settings["REFRESH_TOKEN_LIFETIME"]) if refresh_token else None,
            )
        )
        # SMART App Launch 2.2 §Launch context arrives with your access_token
        if context.patient and not context.faults.no_patient:
            token["patient"] = context.patient
        token["need_patient_banner"] = context.need_patient_banner
        token["smart_style_url"] = self.settings["PUBLIC_BASE_URL"] + "/ehr/smart-style.json"
        if context.encounter:
            token["encounter"] = context.encounter
        fhir_context = context.fhir_context_items()
        if fhir_context:
            token["fhirContext"] = fhir_context
        if context.intent:
            token["intent"] = context.intent
        if context.tenant:
            token["tenant"] = context.tenant
        scopes = (token["scope"] or "").split()
        if "openid" in scopes:
            code = getattr(request, "authorization_code", None) if request.payload.grant_type == "authorization_code" else None
            token["id_token"] = build_id_token(
                self.signing_keys,
                issuer=self.issuer,
                client_id=request.client.get_client_id(),
                subject=user.fhir_user.partition("/")[2],
                fhir_user=self.settings["PUBLIC_BASE_URL"] + "/fhir/" + user.fhir_user if "fhirUser" in scopes else None,
                auth_time=user.auth_time,
                lifetime=int(self.settings["ID_TOKEN_LIFETIME"]),
                nonce=code.nonce if code is not None else None,  # OIDC §12.2: no nonce on refresh
                fault=context.faults.id_token or self.settings.get("ID_TOKEN_FAULT"),
            )

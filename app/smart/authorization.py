"""SMART App Launch client: the authorize request (PKCE S256), the code exchange and refresh, with authlib.

SMART App Launch 2.2 §App Launch: Launch and Authorization
(§Obtain authorization code, §Obtain access token, §Refresh access token).
The code exchange and refresh POST to the token endpoint discovered for the
launch's ``iss``; tokens are returned to the caller and never logged.
Failures are raised as :mod:`app.smart.errors` facts or transport facts.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass

import requests
from authlib.integrations.base_client.errors import OAuthError

from ..config import EhrRegistration
from ..outbound import GuardedOAuth2Session, InvalidJson, OutboundClient, OutboundError, UnexpectedContentType
from ..urls import origin_of
from .client_auth import SmartPrivateKeyJWT, signing_keys_for
from .discovery import SmartConfiguration
from .errors import AuthorizationRefused, AuthorizationResponseMismatch, InvalidTokenResponse, TokenEndpointError
from .scopes import requested_scope
from .tokens import TokenGrant, parse_token_response

log = logging.getLogger(__name__)

STATE_BYTES = 32          # 43 URL-safe characters, 256 bits (≥ 122 bits required by SMART 2.2)
CODE_VERIFIER_BYTES = 48  # 64 characters of [A-Za-z0-9_-] (RFC 7636 §4.1: 43..128 of [A-Za-z0-9-._~])
NONCE_BYTES = 32          # OpenID Connect Core §3.1.2.1 / §15.5.2: unguessable, bound to this launch


@dataclass(frozen=True)
class AuthorizationRequest:
    """A prepared authorize redirect: ``url`` to send the browser to, and the secrets kept server-side.

    ``nonce``: sent when ``openid`` is asked for (OIDC Core §3.1.2.1), else ``None``.
    """

    url: str
    state: str
    code_verifier: str
    scope: str
    nonce: str | None = None


def _oauth_client(ehr: EhrRegistration, redirect_uri: str, outbound: OutboundClient, token_endpoint: str,
                  scope: str | None = None) -> GuardedOAuth2Session:
    """An authlib client for one exchange with ``token_endpoint``, through the guarded outbound client.

    Its requests may go to the token endpoint's origin only, never follow a
    redirect (the code and ``code_verifier`` are never re-posted elsewhere),
    and are bounded in time and size (RFC 9700 §4.11, RFC 6749 §10.6).
    Client authentication is the registration's ``token_endpoint_auth_method``:
    ``none`` (``client_id`` in the body), ``client_secret_basic`` (RFC 6749 §2.3.1), or
    ``private_key_jwt`` (a signed assertion per request, :mod:`app.smart.client_auth`).
    """
    method = ehr.token_endpoint_auth_method
    secret = ehr.client_secret if method == "client_secret_basic" else None
    auth_method = SmartPrivateKeyJWT(signing_keys_for(ehr), token_endpoint) if method == "private_key_jwt" \
        else ("client_secret_basic" if secret else "none")
    return outbound.oauth_session(
        outbound.policy("token", origin_of(token_endpoint)),
        client_id=ehr.client_id, client_secret=secret, token_endpoint_auth_method=auth_method,
        redirect_uri=redirect_uri, scope=scope, code_challenge_method="S256")


def build_authorization_request(ehr: EhrRegistration, config: SmartConfiguration, *, iss: str,
                                launch: str | None, redirect_uri: str,
                                outbound: OutboundClient) -> AuthorizationRequest:
    """Prepare the authorize redirect for an EHR launch (``launch`` given) or a standalone launch.

    ``aud`` is ``iss`` exactly as received; PKCE is always S256 whatever the
    server advertises; ``scope`` uses v2 syntax only when the server lists
    ``permission-v2`` (SMART 2.2 §Obtain authorization code); ``openid fhirUser``
    and a fresh ``nonce`` when the registration allows it and the server
    supports OpenID Connect (:attr:`SmartConfiguration.supports_openid`).
    """
    identity = ehr.openid and config.supports_openid
    scope = requested_scope(ehr_launch=launch is not None, v2=config.uses_v2_scopes, extra=ehr.scopes,
                            identity=identity)
    code_verifier = secrets.token_urlsafe(CODE_VERIFIER_BYTES)
    state = secrets.token_urlsafe(STATE_BYTES)
    nonce = secrets.token_urlsafe(NONCE_BYTES) if identity else None
    extra = {"aud": iss}
    if launch is not None:
        extra["launch"] = launch
    if nonce is not None:
        extra["nonce"] = nonce
    oauth = _oauth_client(ehr, redirect_uri, outbound, config.token_endpoint, scope)
    url, _ = oauth.create_authorization_url(
        config.authorization_endpoint, state=state, code_verifier=code_verifier, **extra)
    return AuthorizationRequest(url=url, state=state, code_verifier=code_verifier, scope=scope, nonce=nonce)


def check_response_issuer(received_iss: str | None, *, expected_issuer: str | None, required: bool,
                          fallback_issuers: tuple[str, ...] = ()) -> None:
    """Check the authorization response's ``iss`` (RFC 9207 §2.4) before any token request.

    ``received_iss``: the callback's ``iss`` (``None`` when absent);
    ``expected_issuer``: the issuer of the server the browser was sent to;
    ``required``: that server advertised ``authorization_response_iss_parameter_supported``;
    ``fallback_issuers``: when discovery named no issuer, the values an honest
    server of this launch could use (its FHIR base, its authorize endpoint's
    origin): an ``iss`` naming anything else is another server's answer.
    Raises :class:`AuthorizationResponseMismatch`.
    """
    if received_iss is None:
        if required:
            raise AuthorizationResponseMismatch("issuer-missing")
        return
    accepted = (expected_issuer,) if expected_issuer is not None else fallback_issuers
    if received_iss not in accepted:
        raise AuthorizationResponseMismatch("issuer-mismatch")


def refused_authorization(error: str, description: str | None) -> AuthorizationRefused:
    """The fact for an ``error`` on the redirect (RFC 6749 §4.1.2.1)."""
    return AuthorizationRefused(error, description)


def _post_token(call, during: str) -> dict:
    """Run an authlib token call; raise :class:`TokenEndpointError`, :class:`InvalidTokenResponse` or a transport fact.

    Transport facts (:mod:`app.outbound.errors`: timeouts, refused redirects,
    oversized or malformed answers) propagate unchanged.
    """
    try:
        response = call()
    except (InvalidJson, UnexpectedContentType):
        raise InvalidTokenResponse("the answer is not a JSON object", during) from None
    except OutboundError:
        raise
    except OAuthError as exc:
        raise TokenEndpointError(during, error=str(exc.error), description=str(exc.description or "") or None) \
            from None
    except requests.HTTPError as exc:
        raise TokenEndpointError(during, status=exc.response.status_code) from None
    except (ValueError, TypeError, AttributeError):
        raise InvalidTokenResponse("the answer is not a JSON object", during) from None
    return dict(response)


def exchange_code(ehr: EhrRegistration, token_endpoint: str, *, code: str, code_verifier: str,
                  redirect_uri: str, requested: str, outbound: OutboundClient,
                  now: float | None = None) -> TokenGrant:
    """POST the authorization code with its ``code_verifier`` and parse the token response.

    Raises :class:`TokenEndpointError`, :class:`InvalidTokenResponse`,
    :class:`~app.smart.errors.NoPatientContext`, or a transport fact of
    :mod:`app.outbound.errors` (timeout, unreachable, redirect refused, too large).
    """
    oauth = _oauth_client(ehr, redirect_uri, outbound, token_endpoint)
    raw = _post_token(lambda: oauth.fetch_token(
        token_endpoint, grant_type="authorization_code", code=code, code_verifier=code_verifier,
        redirect_uri=redirect_uri), "code exchange")
    return parse_token_response(raw, requested=requested, now=now)


def refresh(ehr: EhrRegistration, token_endpoint: str, *, previous: TokenGrant, redirect_uri: str,
            outbound: OutboundClient, now: float | None = None) -> TokenGrant:
    """Refresh the access token (SMART 2.2 §Refresh access token); context carries over from ``previous``.

    ``previous.refresh_token`` must be set. Raises like :func:`exchange_code`.
    """
    oauth = _oauth_client(ehr, redirect_uri, outbound, token_endpoint)
    raw = _post_token(lambda: oauth.refresh_token(
        token_endpoint, refresh_token=previous.refresh_token),
        "token refresh")
    return previous.renewed(parse_token_response(raw, requested=previous.scope, now=now, require_patient=False,
                                                 during="token refresh"))

"""SMART App Launch client: the authorize request (PKCE S256), the code exchange and refresh, with authlib.

SMART App Launch 2.2 §App Launch: Launch and Authorization
(§Obtain authorization code, §Obtain access token, §Refresh access token).
The code exchange and refresh POST to the token endpoint discovered for the
launch's ``iss``; tokens are returned to the caller and never logged.
"""

from __future__ import annotations

import logging
import re
import secrets
import time
from dataclasses import asdict, dataclass

import requests
from authlib.integrations.base_client.errors import OAuthError
from authlib.integrations.requests_client import OAuth2Session

from .config import EhrRegistration
from .discovery import SmartConfiguration
from .errors import AccessDenied, AuthorizationFailed, NoPatientContext, UpstreamError
from .http import OutboundSession
from .scopes import requested_scope

log = logging.getLogger(__name__)

STATE_BYTES = 32          # 43 URL-safe characters, 256 bits (≥ 122 bits required by SMART 2.2)
CODE_VERIFIER_BYTES = 48  # 64 characters of [A-Za-z0-9_-] (RFC 7636 §4.1: 43..128 of [A-Za-z0-9-._~])
FHIR_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")  # FHIR R4 §2.24.0.1 id datatype


@dataclass(frozen=True)
class AuthorizationRequest:
    """A prepared authorize redirect: ``url`` to send the browser to, and the secrets kept server-side."""

    url: str
    state: str
    code_verifier: str
    scope: str


@dataclass(frozen=True)
class TokenGrant:
    """A token response reduced to what the app keeps (SMART App Launch 2.2 §Response to token request).

    ``expires_at``: epoch seconds, or ``None`` when the server gave no ``expires_in``.
    ``scope``: as granted (the requested scope when the server omits it, RFC 6749 §5.1).
    ``preselected_study_id``: the ImagingStudy id from an ``fhirContext`` reference, if any.
    """

    access_token: str
    scope: str
    expires_at: float | None
    refresh_token: str | None = None
    patient: str | None = None
    need_patient_banner: bool = True
    smart_style_url: str | None = None
    preselected_study_id: str | None = None

    def to_dict(self) -> dict:
        """JSON-able form for the launch store (contains the tokens: never log or render it)."""
        return asdict(self)


def _oauth_session(ehr: EhrRegistration, redirect_uri: str, pool: OutboundSession,
                   scope: str | None = None) -> OAuth2Session:
    """An authlib client for one exchange, sharing ``pool``'s connection pools, timeout and retries.

    Not closed after use: closing a session closes its adapters, which are ``pool``'s.
    """
    secret = ehr.client_secret
    oauth = OAuth2Session(
        client_id=ehr.client_id, client_secret=secret,
        token_endpoint_auth_method="client_secret_basic" if secret else "none",
        redirect_uri=redirect_uri, scope=scope, code_challenge_method="S256", default_timeout=pool.default_timeout)
    for prefix, adapter in pool.adapters.items():
        oauth.mount(prefix, adapter)  # keep-alive connections to the token endpoint across launches
    oauth.headers["User-Agent"] = pool.headers["User-Agent"]
    return oauth


def build_authorization_request(ehr: EhrRegistration, config: SmartConfiguration, *, iss: str,
                                launch: str | None, redirect_uri: str,
                                pool: OutboundSession) -> AuthorizationRequest:
    """Prepare the authorize redirect for an EHR launch (``launch`` given) or a standalone launch.

    ``aud`` is ``iss`` exactly as received; PKCE is always S256 whatever the
    server advertises; ``scope`` uses v2 syntax only when the server lists
    ``permission-v2`` (SMART 2.2 §Obtain authorization code).
    """
    scope = requested_scope(ehr_launch=launch is not None, v2=config.uses_v2_scopes, extra=ehr.scopes)
    code_verifier = secrets.token_urlsafe(CODE_VERIFIER_BYTES)
    state = secrets.token_urlsafe(STATE_BYTES)
    extra = {"aud": iss}
    if launch is not None:
        extra["launch"] = launch
    oauth = _oauth_session(ehr, redirect_uri, pool, scope)
    url, _ = oauth.create_authorization_url(
        config.authorization_endpoint, state=state, code_verifier=code_verifier, **extra)
    return AuthorizationRequest(url=url, state=state, code_verifier=code_verifier, scope=scope)


def raise_for_callback_error(error: str, description: str | None) -> None:
    """Turn an ``error`` on the redirect (RFC 6749 §4.1.2.1) into the page the clinician sees."""
    detail = f"{error[:100]}: {description[:500]}" if description else error[:100]
    if error == "access_denied":
        raise AccessDenied(detail)
    raise AuthorizationFailed(detail, title="The EHR refused the sign-in request")


def _post_token(call, what: str) -> dict:
    try:
        return dict(call())
    except OAuthError as exc:
        detail = str(exc.error)[:100] + (f": {str(exc.description)[:500]}" if exc.description else "")
        raise AuthorizationFailed(f"During {what}, the token endpoint answered: {detail}") from None
    except requests.Timeout:
        raise UpstreamError(f"The token endpoint did not answer in time during {what}.",
                            title="The EHR did not answer in time", status=504) from None
    except requests.HTTPError as exc:
        raise AuthorizationFailed(
            f"The token endpoint answered HTTP {exc.response.status_code} during {what}.") from None
    except requests.RequestException as exc:
        raise UpstreamError(f"Could not reach the token endpoint during {what} ({type(exc).__name__}).",
                            title="The EHR could not be reached") from None
    except ValueError:
        raise AuthorizationFailed(f"The token endpoint's answer was not a JSON object during {what}.") from None


def exchange_code(ehr: EhrRegistration, token_endpoint: str, *, code: str, code_verifier: str,
                  redirect_uri: str, requested: str, pool: OutboundSession,
                  now: float | None = None) -> TokenGrant:
    """POST the authorization code with its ``code_verifier`` and parse the token response.

    Raises :class:`AuthorizationFailed` (OAuth error, malformed response),
    :class:`UpstreamError` (timeout, unreachable). Patient context is checked by the caller.
    """
    oauth = _oauth_session(ehr, redirect_uri, pool)
    raw = _post_token(lambda: oauth.fetch_token(
        token_endpoint, grant_type="authorization_code", code=code, code_verifier=code_verifier,
        redirect_uri=redirect_uri), "the code exchange")
    return parse_token_response(raw, requested=requested, now=now)


def refresh(ehr: EhrRegistration, token_endpoint: str, *, refresh_token: str, redirect_uri: str,
            previous: TokenGrant, pool: OutboundSession, now: float | None = None) -> TokenGrant:
    """Refresh the access token (SMART 2.2 §Refresh access token); context carries over from ``previous``.

    A new refresh token replaces the old one when the server rotates it.
    Raises like :func:`exchange_code`.
    """
    oauth = _oauth_session(ehr, redirect_uri, pool)
    raw = _post_token(lambda: oauth.refresh_token(token_endpoint, refresh_token=refresh_token),
                      "the token refresh")
    grant = parse_token_response(raw, requested=previous.scope, now=now, require_patient=False)
    return TokenGrant(
        access_token=grant.access_token, scope=grant.scope, expires_at=grant.expires_at,
        refresh_token=grant.refresh_token or refresh_token,
        patient=grant.patient or previous.patient, need_patient_banner=previous.need_patient_banner,
        smart_style_url=previous.smart_style_url, preselected_study_id=previous.preselected_study_id)


def _expires_at(value, now: float) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return None
    return now + max(seconds, 0.0)


def _preselected_study(fhir_context) -> str | None:
    for item in fhir_context or ():
        reference = item.get("reference") if isinstance(item, dict) else item
        if isinstance(reference, str) and reference.startswith("ImagingStudy/"):
            study_id = reference.split("/", 1)[1]
            if FHIR_ID.match(study_id):
                return study_id
    return None


def parse_token_response(raw: dict, *, requested: str, now: float | None = None,
                         require_patient: bool = True) -> TokenGrant:
    """Validate a token response and extract launch context.

    Requires ``access_token`` and ``token_type`` Bearer (case-insensitive);
    ``expires_in`` may be a number or a numeric string; ``patient`` must be a
    FHIR id (raises :class:`NoPatientContext` when absent and ``require_patient``).
    """
    now = time.time() if now is None else now
    access_token = raw.get("access_token")
    if not isinstance(access_token, str) or not access_token:
        raise AuthorizationFailed("The token response has no access_token.")
    if str(raw.get("token_type", "")).lower() != "bearer":
        raise AuthorizationFailed("The token response's token_type is not Bearer.")
    patient = raw.get("patient")
    if not isinstance(patient, str) or not patient:
        patient = None
    elif not FHIR_ID.match(patient):
        raise AuthorizationFailed("The token response's patient is not a valid FHIR id.")
    if require_patient and patient is None:
        raise NoPatientContext("The EHR's token response has no patient.")
    scope = raw.get("scope")
    banner = raw.get("need_patient_banner")
    style = raw.get("smart_style_url")
    refresh_token = raw.get("refresh_token")
    return TokenGrant(
        access_token=access_token,
        scope=scope if isinstance(scope, str) and scope.strip() else requested,
        expires_at=_expires_at(raw.get("expires_in"), now),
        refresh_token=refresh_token if isinstance(refresh_token, str) and refresh_token else None,
        patient=patient,
        need_patient_banner=banner if isinstance(banner, bool) else True,
        smart_style_url=style if isinstance(style, str) and style.startswith(("https://", "http://")) else None,
        preselected_study_id=_preselected_study(raw.get("fhirContext")))

"""``/oauth2/authorize`` and ``/oauth2/token`` (SMART App Launch 2.2 §Obtain authorization code, §Obtain access token).

Checks made on top of authlib's RFC 6749/7636 validation, each answered the
OAuth 2.0 way (RFC 6749 §4.1.2.1):

* unknown ``client_id``, ``redirect_uri`` missing or not exactly registered,
  bad ``response_type`` -> HTML error page, status 400, NO redirect;
* ``aud`` missing or not exactly the FHIR base -> redirect ``invalid_request``;
* ``launch`` scope with missing/unknown/expired/reused ``launch`` -> ``invalid_request``;
  a ``launch`` parameter without the ``launch`` scope -> ``invalid_request``;
* malformed SMART scope -> ``invalid_scope``; PKCE problems -> ``invalid_request``;
* ``deny`` fault -> ``access_denied``.

RFC 9207: every redirect to the client (code or error) carries ``iss`` = the issuer
(``PUBLIC_BASE_URL``) unless ``AUTHORIZATION_RESPONSE_ISS`` is false (then discovery
does not advertise it either); the launch faults ``omit_iss`` / ``wrong_iss`` drop it or
send :data:`sandbox.launches.WRONG_ISSUER` while discovery still advertises support.

Also here: ``GET /oauth2/jwks`` (the ``jwks_uri``, id_token keys). Registering this
blueprint also registers :mod:`sandbox.identity` (openid-configuration, Practitioner, Encounter).

EHR launch: the demo clinician is signed in, so no consent screen. Standalone
launch (``launch/patient`` without ``launch``): a patient picker; the pending
request is kept server side under a random id that the form posts back.
"""

from __future__ import annotations

import secrets
import threading

from authlib.common.urls import add_params_to_uri
from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749.errors import AccessDeniedError, InvalidRequestError
from flask import Blueprint, current_app, g, jsonify, make_response, render_template, request

from . import clock
from .identity import bp as identity_bp
from .launches import WRONG_ISSUER, LaunchContext, LaunchError
from .oauth import AuthorizedUser
from .state import get_state

bp = Blueprint("oauth2", __name__, url_prefix="/oauth2")


@bp.record_once
def _register_identity(setup_state):
    # The OIDC / identity endpoints belong with the authorization server.
    setup_state.app.register_blueprint(identity_bp)


@bp.after_request
def _authorization_response_iss(response):
    """RFC 9207 §2: add ``iss`` to every authorization response redirect (success and error)."""
    if request.endpoint not in ("oauth2.authorize", "oauth2.authorize_picked") or response.status_code not in (302, 303):
        return response
    state = get_state()
    fault = getattr(g, "sandbox_iss_fault", None)
    location = response.headers.get("Location")
    if location and state.config["AUTHORIZATION_RESPONSE_ISS"] and fault != "omit_iss":
        issuer = WRONG_ISSUER if fault == "wrong_iss" else state.oauth.issuer
        response.headers["Location"] = add_params_to_uri(location, [("iss", issuer)])
    return response

PENDING_LIFETIME = 600


class PendingAuthorizations:
    """Standalone authorization requests waiting for the patient picker (single use, 10 min)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._items: dict[str, tuple[float, list[tuple[str, str]]]] = {}

    def add(self, args: list[tuple[str, str]]) -> str:
        """Store the original authorize query pairs; return the pending id."""
        pending_id = secrets.token_urlsafe(24)
        with self._lock:
            self._items[pending_id] = (clock.now(), args)
        return pending_id

    def pop(self, pending_id: str) -> list[tuple[str, str]] | None:
        """Remove and return the query pairs, or None if unknown/expired."""
        with self._lock:
            item = self._items.pop(pending_id or "", None)
        if item is None or clock.now() - item[0] > PENDING_LIFETIME:
            return None
        return item[1]


def _error_page(error: OAuth2Error):
    response = make_response(
        render_template("oauth_error.html", error=error.error, description=error.get_error_description()), 400
    )
    response.headers["Cache-Control"] = "no-store"
    return response


def _redirect_error(error: OAuth2Error, redirect_uri: str, state: str | None):
    params = [("error", error.error)]
    if error.description:
        params.append(("error_description", error.description))
    if state:
        params.append(("state", state))
    response = make_response("", 302)
    response.headers["Location"] = add_params_to_uri(redirect_uri, params)
    response.headers["Cache-Control"] = "no-store"
    return response


def _issue_code(grant, context: LaunchContext):
    return get_state().oauth.create_authorization_response(grant_user=AuthorizedUser(context), grant=grant)


def _validate():
    """Run authlib + SMART checks on the current request; return (grant, scope_tokens) or a response."""
    state = get_state()
    try:
        grant = state.oauth.get_consent_grant(end_user=None)
    except OAuth2Error as error:
        if error.redirect_uri:
            return None, _redirect_error(error, error.redirect_uri, request.args.get("state"))
        return None, _error_page(error)
    aud = request.args.get("aud")
    if not aud:
        error = InvalidRequestError("missing 'aud' (must be the FHIR base URL)")
    elif aud != state.fhir_base_url:
        error = InvalidRequestError("'aud' does not match this EHR's FHIR base URL")
    else:
        return grant, None
    return None, _redirect_error(error, grant.redirect_uri, request.args.get("state"))


@bp.get("/authorize")
def authorize():
    """Authorization endpoint (GET). See module docstring for every check."""
    grant, failure = _validate()
    if failure is not None:
        return failure
    state = get_state()
    scopes = request.args.get("scope", "").split()
    launch = request.args.get("launch")
    redirect_uri, oauth_state = grant.redirect_uri, request.args.get("state")
    if "launch" in scopes:
        try:
            context = state.launches.consume(launch)
        except LaunchError as exc:
            return _redirect_error(InvalidRequestError(str(exc)), redirect_uri, oauth_state)
        if context.faults.omit_iss or context.faults.wrong_iss:
            g.sandbox_iss_fault = "omit_iss" if context.faults.omit_iss else "wrong_iss"
        if context.faults.deny:
            return _redirect_error(
                AccessDeniedError("The user denied access to the imaging app"), redirect_uri, oauth_state
            )
        return _issue_code(grant, context)
    if launch is not None:
        return _redirect_error(
            InvalidRequestError("'launch' parameter given without the 'launch' scope"), redirect_uri, oauth_state
        )
    if "launch/patient" in scopes:
        pending_id = state.pending.add(list(request.args.items(multi=True)))
        client = grant.client
        response = make_response(
            render_template(
                "picker.html",
                pending_id=pending_id,
                client_name=client.client_name,
                patients=state.dataset.patients(),
                scopes=scopes,
            )
        )
        response.headers["Cache-Control"] = "no-store"
        return response
    return _issue_code(grant, LaunchContext(patient=None))


@bp.post("/authorize")
def authorize_picked():
    """Patient picker submit: form fields ``pending`` and ``patient`` (or ``deny`` to cancel)."""
    state = get_state()
    denied = "deny" in request.form
    picked = request.form.get("patient", "")
    args = state.pending.pop(request.form.get("pending", ""))
    if args is None:
        error = InvalidRequestError("this sign-in request has expired or was already used; start the launch again")
        return _error_page(error)
    # Re-validate the original authorize request exactly as first received.
    with current_app.test_request_context("/oauth2/authorize", query_string=args, method="GET"):
        grant, failure = _validate()
        if failure is not None:
            return failure
        redirect_uri, oauth_state = grant.redirect_uri, request.args.get("state")
        if denied:
            return _redirect_error(AccessDeniedError("The user cancelled the sign-in"), redirect_uri, oauth_state)
        patient = state.dataset.patient(picked)
        if patient is None:
            return _redirect_error(InvalidRequestError("no patient was selected"), redirect_uri, oauth_state)
        return _issue_code(grant, LaunchContext(patient=patient.id, need_patient_banner=True))


@bp.post("/token")
def token():
    """Token endpoint: ``authorization_code`` and ``refresh_token`` grants (JSON errors per RFC 6749 §5.2).

    Client authentication: ``none``, ``client_secret_basic`` or ``private_key_jwt`` (per client).
    """
    return get_state().oauth.create_token_response()


@bp.get("/jwks")
def jwks():
    """``jwks_uri``: the public keys that sign id_tokens (public, CORS ``*``)."""
    response = jsonify(get_state().oauth.signing_keys.jwks())
    response.headers["Access-Control-Allow-Origin"] = "*"
    response.headers["Cache-Control"] = "no-cache"
    return response

"""The views' calls for the user's identity, the audit trail and the launch metrics (kept out of ``views.py``).

* :func:`signed_in_user`: validates the code exchange's id_token for the pending
  launch (:func:`app.smart.id_token.validate_id_token`) and reads the user's name.
* ``audit_*``: one AuditEvent per access (:mod:`app.audit.events`), never delaying the page.
* :func:`header_context`: what ``base.html``'s header line shows (user, encounter).
"""

from __future__ import annotations

from flask import g

from ..audit import SERIOUS_FAILURE, SUCCESS, Actor
from ..config import EhrRegistration
from ..launches.context import resolve_user
from ..launches.state import ActiveLaunch, PendingLaunch, SignedInUser
from ..observability import metrics
from ..smart.id_token import validate_id_token
from ..smart.scopes import granted
from ..smart.tokens import TokenGrant
from .services import services


def signed_in_user(pending: PendingLaunch, ehr: EhrRegistration, grant: TokenGrant) -> SignedInUser | None:
    """The launch's user when ``openid`` was asked for and granted (or an id_token came anyway), else ``None``.

    Raises :class:`~app.smart.id_token.InvalidIdToken` (the launch ends).
    """
    if pending.nonce is None or not (grant.id_token or granted(grant.scope, "openid")):
        return None
    svc = services()
    identity = validate_id_token(grant.id_token, issuer=pending.issuer or "", client_id=ehr.client_id,
                                 nonce=pending.nonce, jwks=svc.jwks, jwks_uri=pending.jwks_uri)
    return resolve_user(pending.iss, identity, grant, svc.outbound)


def actor_for(iss: str, ehr: EhrRegistration | None, user: SignedInUser | None) -> Actor:
    """The audit agent: the user's ``fhirUser`` (``Type/id`` on this base, else as sent) when known, else the client."""
    return Actor(client_id=ehr.client_id if ehr else "unknown", iss=iss,
                 fhir_user=(user.reference or user.fhir_user) if user else None,
                 user_name=user.display_name if user else None)


def audit_launch(iss: str, active: ActiveLaunch | None, failure: BaseException | None = None) -> None:
    """The launch's outcome: success with its user and patient, or the failure's class (counted in metrics too)."""
    svc = services()
    outcome = "success" if failure is None else type(failure).__name__
    metrics.LAUNCHES.labels(outcome).inc()
    if not svc.audit.enabled:
        return
    ehr = svc.settings.find_ehr(iss)
    svc.audit.record(svc.audit_events.launch(
        actor_for(iss, ehr, active.user if active else None), active.patient if active else None,
        SUCCESS if failure is None else SERIOUS_FAILURE, None if failure is None else outcome))


def audit_study_list(state: ActiveLaunch, ehr: EhrRegistration, count: int, query: str) -> None:
    """A study-list view: the search the list is made of, and how many studies it shows."""
    svc = services()
    if svc.audit.enabled:
        svc.audit.record(svc.audit_events.study_list(actor_for(state.iss, ehr, state.user), state.patient,
                                                     query, count))


def audit_viewer(state: ActiveLaunch, ehr: EhrRegistration, study_uids: list[str]) -> None:
    """The viewer was sent ``study_uids`` (RAD-106 STUDY request)."""
    svc = services()
    if svc.audit.enabled and study_uids:
        svc.audit.record(svc.audit_events.viewer(actor_for(state.iss, ehr, state.user), state.patient, study_uids))


def show_in_header(state: ActiveLaunch) -> None:
    """Let ``base.html`` name the signed-in user and the encounter for this response."""
    g.signed_in_user = state.user
    g.launch_encounter = state.grant.encounter
    g.launch_style_url = state.grant.smart_style_url  # base.html links /l/<id>/style.css (app.web.style)


def header_context() -> dict:
    """Template context: ``signed_in_user`` (:class:`SignedInUser` or ``None``), ``launch_encounter`` (an id)."""
    return {"signed_in_user": g.get("signed_in_user"), "launch_encounter": g.get("launch_encounter")}

"""Identity endpoints of the sandbox EHR.

* ``GET /.well-known/openid-configuration`` — OpenID Provider metadata under the issuer
  (``PUBLIC_BASE_URL``, OIDC Discovery §4), public, CORS ``*``.
* ``GET /fhir/Practitioner/<id>`` — the sandbox users (``fhirUser`` targets).
  Allowed with ``openid fhirUser`` for the token's own ``fhirUser`` only, or with a
  ``user/`` scope covering Practitioner read (``user/Practitioner.r``/``.rs``/``.read``,
  ``user/*.…``) for any Practitioner. Otherwise 403 ``forbidden`` (``insufficient_scope``).
* ``GET /fhir/Encounter/<id>`` — ``enc-<patient id>`` for every patient; read needs an
  Encounter read scope (``patient/Encounter.r``, ``patient/*.read``, ``user/Encounter.rs`` …);
  patient-level scopes only for the token's patient (403 otherwise), as for Patient.
"""

from __future__ import annotations

import json

from flask import Blueprint, Response, request

from .discovery import openid_configuration
from .fhir_api import _check_read_params, _unauthorized, authorize_request, check_format, fhir_response
from .launches import encounter_id_for
from .outcome import FhirError
from .scopes import permitting_levels
from .state import get_state

bp = Blueprint("identity", __name__)

#: The sandbox's users. ``dr-demo`` is the clinician signed in to the EHR (``fhirUser``).
PRACTITIONERS = {
    "dr-demo": {
        "resourceType": "Practitioner",
        "id": "dr-demo",
        "active": True,
        "name": [{"use": "official", "family": "Morgan", "given": ["Alex"], "prefix": ["Dr."],
                  "text": "Dr. Alex Morgan"}],
        "identifier": [{"system": "http://hl7.org/fhir/sid/us-npi", "value": "1234567893"}],
    },
    "dr-radiology": {
        "resourceType": "Practitioner",
        "id": "dr-radiology",
        "active": True,
        "name": [{"use": "official", "family": "Reyes", "given": ["Samuel"], "prefix": ["Dr."],
                  "text": "Dr. Samuel Reyes"}],
        "identifier": [{"system": "http://hl7.org/fhir/sid/us-npi", "value": "1245319599"}],
    },
}


@bp.errorhandler(FhirError)
def _fhir_error(error: FhirError):
    return fhir_response(error.to_resource(), error.status, error.headers)


@bp.get("/.well-known/openid-configuration")
def openid_configuration_document():
    """OpenID Provider configuration (public, CORS ``*``)."""
    body = json.dumps(openid_configuration(get_state().config))
    return Response(body, content_type="application/json", headers={"Access-Control-Allow-Origin": "*"})


def _bearer_record():
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        raise _unauthorized("missing bearer token")
    record = get_state().oauth.store.find_access_token(value.strip())
    if record is None:
        raise _unauthorized("unknown or expired access token")
    return record


@bp.get("/fhir/Practitioner/<practitioner_id>")
def read_practitioner(practitioner_id: str):
    """``GET Practitioner/{id}`` (see module docstring for the scopes)."""
    check_format()
    record = _bearer_record()
    _check_read_params()
    scopes = record.scope.split()
    own = record.user.fhir_user == f"Practitioner/{practitioner_id}"
    if "user" not in permitting_levels(record.scope, "Practitioner", "read"):
        if not ("openid" in scopes and "fhirUser" in scopes):
            raise FhirError(403, "forbidden", "insufficient_scope: needs openid fhirUser or user/Practitioner.r")
        if not own:
            raise FhirError(403, "forbidden", "insufficient_scope: openid fhirUser allows reading only your own Practitioner")
    resource = PRACTITIONERS.get(practitioner_id)
    if resource is None:
        raise FhirError(404, "not-found", f"Practitioner/{practitioner_id} is not known")
    return fhir_response(resource)


def encounter_resource(patient_id: str) -> dict:
    """The patient's (only) encounter: an in-progress ambulatory visit with the demo clinician."""
    return {
        "resourceType": "Encounter",
        "id": encounter_id_for(patient_id),
        "status": "in-progress",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB",
                  "display": "ambulatory"},
        "type": [{"text": "Imaging results review"}],
        "subject": {"reference": f"Patient/{patient_id}"},
        "participant": [{"individual": {"reference": "Practitioner/dr-demo", "display": "Dr. Alex Morgan"}}],
        "period": {"start": "2025-01-15T09:00:00-06:00"},
    }


@bp.get("/fhir/Encounter/<encounter_id>")
def read_encounter(encounter_id: str):
    """``GET Encounter/{id}`` (read, patient compartment applies)."""
    check_format()
    _, compartment = authorize_request("Encounter", "read")
    _check_read_params()
    patient_id = encounter_id[len("enc-"):] if encounter_id.startswith("enc-") else None
    if patient_id is None or get_state().dataset.patient(patient_id) is None:
        raise FhirError(404, "not-found", f"Encounter/{encounter_id} is not known")
    if compartment is not None and patient_id != compartment:
        raise FhirError(403, "forbidden", f"resource is outside the patient compartment of this token ({compartment} only)")
    return fhir_response(encounter_resource(patient_id))

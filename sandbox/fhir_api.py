"""FHIR R4 REST API (JSON only) enforcing SMART access tokens.

* Discovery (``/.well-known/smart-configuration``, ``/metadata``) is public.
* Everything else needs ``Authorization: Bearer <token>`` (RFC 6750 §3):
  missing/unknown/expired -> 401 + ``WWW-Authenticate: Bearer error="invalid_token"``.
* Scope (SMART App Launch 2.2 §Scopes): read needs ``r`` (v2) / ``read`` (v1),
  search needs ``s`` / ``read``; otherwise 403 OperationOutcome ``forbidden``
  with diagnostics ``insufficient_scope``.
* Patient compartment: with patient-level scopes, Patient/ImagingStudy of any
  other patient -> 403 ``forbidden`` (the sandbox prefers an explicit refusal
  to a 404, so integrators see why); an id that exists nowhere -> 404.
  A search without ``patient``/``subject`` -> 400 ``required``.
* Content negotiation: an ``Accept`` that excludes JSON, or ``_format`` naming
  XML -> 406 OperationOutcome (JSON).
"""

from __future__ import annotations

import json
import time

from flask import Blueprint, Response, request

from .dicomweb import associated_endpoints
from .discovery import capability_statement, smart_configuration
from .endpoints import endpoint as find_endpoint
from .endpoints import referenced_endpoints
from .outcome import FhirError
from .reports import report as find_report
from .reports import reports_for
from .scopes import permitting_levels
from .search import page_links, parse_search, run_search, search_url
from .state import get_state

bp = Blueprint("fhir", __name__, url_prefix="/fhir")

FHIR_JSON = "application/fhir+json; charset=utf-8"
JSON_TYPES = ("application/fhir+json", "application/json", "application/json+fhir")
JSON_FORMATS = {"json", "application/json", "application/fhir+json", "application/json+fhir"}
_READ_PARAMETERS = {"_format", "_pretty"}


def fhir_response(resource: dict, status: int = 200, headers: dict | None = None) -> Response:
    """Serialize *resource* as ``application/fhir+json; charset=utf-8``."""
    pretty = request.args.get("_pretty") == "true"
    body = json.dumps(resource, indent=2 if pretty else None, ensure_ascii=False)
    return Response(body, status=status, headers=headers or {}, content_type=FHIR_JSON)


@bp.errorhandler(FhirError)
def _fhir_error(error: FhirError):
    return fhir_response(error.to_resource(), error.status, error.headers)


def check_format() -> None:
    """Raise 406 when the client accepts no JSON (``Accept``) or asks ``_format`` other than JSON."""
    fmt = request.args.get("_format")
    if fmt is not None and fmt.split(";")[0].strip() not in JSON_FORMATS:
        raise FhirError(406, "not-supported", f"_format={fmt!r} is not supported; this server speaks JSON only")
    accept = request.headers.get("Accept")
    if accept and not any(request.accept_mimetypes[t] for t in JSON_TYPES):
        raise FhirError(406, "not-supported", "this server only produces application/fhir+json")


def _unauthorized(description: str) -> FhirError:
    header = f'Bearer realm="sandbox-ehr", error="invalid_token", error_description="{description}"'
    return FhirError(401, "login", description, {"WWW-Authenticate": header})


def authorize_request(resource_type: str, interaction: str):
    """Validate the bearer token for *interaction* (``read``/``search``) on *resource_type*.

    Returns ``(token_record, compartment_patient_id_or_None)`` — None means no
    compartment restriction (a ``user/`` scope applies). Raises :class:`FhirError`
    401/403. Applies the launch's ``delay_ms`` fault.
    """
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        raise _unauthorized("missing bearer token")
    record = get_state().oauth.store.find_access_token(value.strip())
    if record is None:
        raise _unauthorized("unknown or expired access token")
    if record.context.faults.delay_ms:
        time.sleep(record.context.faults.delay_ms / 1000)
    levels = permitting_levels(record.scope, resource_type, interaction)
    if not levels:
        raise FhirError(403, "forbidden", "insufficient_scope")
    if "user" in levels or resource_type == "Endpoint":
        return record, None
    patient = None if record.context.faults.no_patient else record.context.patient
    if patient is None:
        raise FhirError(403, "forbidden", "insufficient_scope: patient-level scope but no patient in context")
    return record, patient


def _check_read_params() -> None:
    unknown = sorted(set(request.args) - _READ_PARAMETERS)
    if unknown:
        raise FhirError(400, "invalid", f"unsupported parameter(s) on read: {', '.join(unknown)}")


def _check_imagingstudy_offered() -> None:
    """404 for ImagingStudy interactions when ``HIDE_IMAGINGSTUDY`` is set (as a server without the type); the
    same for reads with ``UNDECLARED_IMAGINGSTUDY`` (whose search answers an empty searchset instead)."""
    config = get_state().config
    if config["HIDE_IMAGINGSTUDY"] or (config["UNDECLARED_IMAGINGSTUDY"] and request.endpoint != "fhir.search_studies"):
        raise FhirError(404, "not-supported", "'ImagingStudy' is not supported by this server")


def _outside(patient_id: str) -> FhirError:
    return FhirError(403, "forbidden", f"resource is outside the patient compartment of this token ({patient_id} only)")


@bp.get("/.well-known/smart-configuration")
def well_known():
    """SMART configuration (public, CORS ``*``)."""
    public_base_url = get_state().config["PUBLIC_BASE_URL"]
    body = json.dumps({**smart_configuration(public_base_url), "associated_endpoints": associated_endpoints(public_base_url)})
    return Response(body, content_type="application/json", headers={"Access-Control-Allow-Origin": "*"})


@bp.get("/metadata")
def metadata():
    """CapabilityStatement (public)."""
    check_format()
    state = get_state()
    statement = capability_statement(state.config["PUBLIC_BASE_URL"])
    if state.config["HIDE_IMAGINGSTUDY"] or state.config["UNDECLARED_IMAGINGSTUDY"]:
        for rest in statement["rest"]:
            rest["resource"] = [r for r in rest["resource"] if r["type"] != "ImagingStudy"]
    response = fhir_response(statement)
    response.headers["Access-Control-Allow-Origin"] = "*"
    return response


@bp.get("/Patient/<patient_id>")
def read_patient(patient_id: str):
    """``GET Patient/{id}`` (read)."""
    check_format()
    _, compartment = authorize_request("Patient", "read")
    _check_read_params()
    if compartment is not None and patient_id != compartment:
        raise _outside(compartment)
    patient = get_state().dataset.patient(patient_id)
    if patient is None:
        raise FhirError(404, "not-found", f"Patient/{patient_id} is not known")
    return fhir_response(patient.resource)


@bp.get("/ImagingStudy/<study_id>")
def read_study(study_id: str):
    """``GET ImagingStudy/{id}`` (read)."""
    check_format()
    _check_imagingstudy_offered()
    _, compartment = authorize_request("ImagingStudy", "read")
    _check_read_params()
    study = get_state().dataset.study(study_id)
    if study is None:
        raise FhirError(404, "not-found", f"ImagingStudy/{study_id} is not known")
    if compartment is not None and study.patient_id != compartment:
        raise _outside(compartment)
    return fhir_response(study.resource)


@bp.get("/Endpoint/<endpoint_id>")
def read_endpoint(endpoint_id: str):
    """``GET Endpoint/{id}`` (read; Endpoint is not in the Patient compartment, scope still required)."""
    check_format()
    authorize_request("Endpoint", "read")
    _check_read_params()
    state = get_state()
    endpoint = find_endpoint(state, endpoint_id)
    if endpoint is None:
        raise FhirError(404, "not-found", f"Endpoint/{endpoint_id} is not known")
    return fhir_response(endpoint)


@bp.get("/ImagingStudy")
def search_studies():
    """``GET ImagingStudy?patient=...`` — searchset Bundle with paging links (see :mod:`sandbox.search`).

    ``_include=ImagingStudy:endpoint`` appends each distinct Endpoint referenced by
    the page's studies once (``search.mode: include``), when the token's scope
    may read Endpoint; otherwise they are left out.
    """
    check_format()
    _check_imagingstudy_offered()
    record, compartment = authorize_request("ImagingStudy", "search")
    state = get_state()
    if state.config["UNDECLARED_IMAGINGSTUDY"]:
        return fhir_response({"resourceType": "Bundle", "type": "searchset", "total": 0})
    query = parse_search(request.args, state.fhir_base_url)
    if query.patient_id is None:
        raise FhirError(400, "required", "search ImagingStudy needs a patient or subject parameter")
    if compartment is not None and query.patient_id != compartment:
        raise _outside(compartment)
    patient = state.dataset.patient(query.patient_id)
    matches = run_search(patient.studies if patient else [], query)
    page = matches[query.offset: query.offset + query.count]
    base = state.fhir_base_url
    bundle = {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": len(matches),
        "link": page_links(lambda params: search_url(base, params), query, len(matches)),
        "entry": [
            {"fullUrl": f"{base}/ImagingStudy/{s.id}", "resource": s.resource, "search": {"mode": "match"}}
            for s in page
        ],
    }
    if query.include_endpoints and permitting_levels(record.scope, "Endpoint", "read"):
        bundle["entry"] += [
            {"fullUrl": f"{base}/Endpoint/{e['id']}", "resource": e, "search": {"mode": "include"}}
            for e in referenced_endpoints(state, [s.resource for s in page])
        ]
    return fhir_response(bundle)


_REPORT_SEARCH_PARAMETERS = {"patient", "subject", "_count", "_format", "_pretty"}


def _patient_param() -> str | None:
    value = request.args.get("patient") or request.args.get("subject")
    return value.rstrip("/").split("/")[-1] if value else None


@bp.get("/DiagnosticReport")
def search_reports():
    """``GET DiagnosticReport?patient=...`` — one searchset page of the patient's reports (scope-checked)."""
    check_format()
    _, compartment = authorize_request("DiagnosticReport", "search")
    unknown = sorted(set(request.args) - _REPORT_SEARCH_PARAMETERS)
    if unknown:
        raise FhirError(400, "invalid", f"unsupported search parameter(s): {', '.join(unknown)}")
    patient_id = _patient_param()
    if patient_id is None:
        raise FhirError(400, "required", "search DiagnosticReport needs a patient or subject parameter")
    if compartment is not None and patient_id != compartment:
        raise _outside(compartment)
    base = get_state().fhir_base_url
    matches = reports_for(patient_id)
    return fhir_response({
        "resourceType": "Bundle", "type": "searchset", "total": len(matches),
        "link": [{"relation": "self", "url": f"{base}/DiagnosticReport?patient={patient_id}"}],
        "entry": [{"fullUrl": f"{base}/DiagnosticReport/{r['id']}", "resource": r, "search": {"mode": "match"}}
                  for r in matches],
    })


@bp.get("/DiagnosticReport/<report_id>")
def read_report(report_id: str):
    """``GET DiagnosticReport/{id}`` (read, patient compartment)."""
    check_format()
    _, compartment = authorize_request("DiagnosticReport", "read")
    _check_read_params()
    found = find_report(report_id)
    if found is None:
        raise FhirError(404, "not-found", f"DiagnosticReport/{report_id} is not known")
    if compartment is not None and found["subject"]["reference"] != f"Patient/{compartment}":
        raise _outside(compartment)
    return fhir_response(found)


@bp.route("/<path:rest>", methods=["GET", "POST", "PUT", "DELETE", "PATCH"])
def unsupported(rest: str):
    """Any other FHIR path or interaction -> 404/405 OperationOutcome."""
    if request.method != "GET":
        raise FhirError(405, "not-supported", f"{request.method} is not supported by this sandbox")
    raise FhirError(404, "not-supported", f"{rest.split('/')[0]!r} is not supported by this sandbox")

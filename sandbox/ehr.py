"""The sandbox EHR screens (``/ehr``) and its JSON test API.

* ``GET /ehr`` — patient list.
* ``GET /ehr/patients/<id>`` — chart; the Imaging tab embeds the app in an
  iframe via a fresh EHR launch per page view; ``POST`` the options form to
  relaunch with a preselected study and simulated faults.
* ``GET /ehr/patients/<id>/launch`` — fresh launch, redirect (new window).
* ``POST /ehr/api/launches`` — create a launch from JSON (tests, benchmarks).
* ``GET /ehr/smart-style.json`` — the ``smart_style_url`` target.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, jsonify, redirect, render_template, request
from werkzeug.datastructures import MultiDict

from .config import origin_of
from .launches import LAUNCH_OPTION_KEYS, Faults, LaunchContext, LaunchRequestError, build_launch_url, parse_launch_options
from .state import get_state

bp = Blueprint("ehr", __name__, url_prefix="/ehr")

FAULT_FLAGS = ("deny", "narrow_scope", "no_patient", "expired_token", "refresh_fails")

SMART_STYLE = {
    "color_background": "#f6f8fa",
    "color_error": "#b42318",
    "color_highlight": "#1f6feb",
    "color_modal_backdrop": "#00000080",
    "color_success": "#1a7f37",
    "color_text": "#1f2328",
    "dim_border_radius": "6px",
    "dim_font_size": "15px",
    "dim_spacing_size": "16px",
    "font_family_body": "-apple-system, 'Segoe UI', Roboto, Helvetica, Arial, sans-serif",
    "font_family_heading": "-apple-system, 'Segoe UI', Roboto, Helvetica, Arial, sans-serif",
}


@bp.after_request
def _ehr_policy(response):
    config = get_state().config
    # 'self': inside the frame the app navigates to this EHR's own authorize endpoint (EHR launch)
    frame_sources = " ".join(dict.fromkeys(["'self'", config["APP_ORIGIN"], origin_of(config["APP_LAUNCH_URL"])]))
    response.headers["Content-Security-Policy"] = (
        f"default-src 'self'; img-src 'self' data:; script-src 'self'; style-src 'self'; "
        f"frame-src {frame_sources}; frame-ancestors 'self'"
    )
    return response


def create_launch(patient_id: str, study_id: str | None, need_patient_banner: bool, faults: Faults,
                  options: dict[str, Any] | None = None) -> dict[str, str]:
    """Create an EHR launch; return ``{"launch", "iss", "launch_url"}``.

    Raises :class:`LaunchRequestError` if the patient is unknown or the study
    is not one of that patient's studies. Shared by the chart form and the API.
    *options*: extra launch options (:data:`sandbox.launches.LAUNCH_OPTION_KEYS`).
    """
    state = get_state()
    patient = state.dataset.patient(patient_id)
    if patient is None:
        raise LaunchRequestError(f"unknown patient {patient_id!r}")
    if study_id is not None and all(s.id != study_id for s in patient.studies):
        raise LaunchRequestError(f"study {study_id!r} does not belong to patient {patient_id!r}")
    extra = parse_launch_options(options or {}, patient_id, {s.id for s in patient.studies})
    launch = state.launches.create(LaunchContext(patient_id, study_id, need_patient_banner, faults, **extra))
    iss = state.fhir_base_url
    return {"launch": launch, "iss": iss, "launch_url": build_launch_url(state.config["APP_LAUNCH_URL"], iss, launch)}


def _options_from(values) -> dict[str, Any]:
    """Read chart options from form or query values (checkbox semantics).

    ``need_patient_banner`` defaults to true; the form sends a hidden ``0`` plus
    the checkbox's ``1``, so any truthy value among those sent wins.
    """
    values = MultiDict(values)
    delay = values.get("delay_ms", "0") or "0"
    if not delay.isdigit():
        raise LaunchRequestError("delay_ms must be a whole number of milliseconds")
    truthy = ("1", "on", "true")
    faults = {flag: any(v in truthy for v in values.getlist(flag)) for flag in FAULT_FLAGS}
    faults["delay_ms"] = int(delay)
    banner = values.getlist("need_patient_banner")
    return {
        "study": values.get("study") or None,
        "need_patient_banner": not banner or any(v in truthy for v in banner),
        "faults": faults,
    }


def _window_query(options: dict[str, Any]) -> dict[str, str]:
    """Query for the "new window" link reproducing *options*."""
    query = {"need_patient_banner": "1" if options["need_patient_banner"] else "0"}
    if options["study"]:
        query["study"] = options["study"]
    query.update({flag: "1" for flag in FAULT_FLAGS if options["faults"][flag]})
    if options["faults"]["delay_ms"]:
        query["delay_ms"] = str(options["faults"]["delay_ms"])
    return query


@bp.get("")
def patient_list():
    """Patient list page."""
    return render_template("ehr_patients.html", patients=get_state().dataset.patients())


def _patient_or_404(patient_id: str):
    patient = get_state().dataset.patient(patient_id)
    if patient is None:
        abort(404)
    return patient


@bp.route("/patients/<patient_id>", methods=["GET", "POST"])
def chart(patient_id: str):
    """Chart page; the Imaging tab (default) launches the app in an iframe with a fresh launch."""
    patient = _patient_or_404(patient_id)
    tab = request.args.get("tab", "imaging")
    values = request.form if request.method == "POST" else request.args
    error = launch = None
    try:
        options = _options_from(values)
    except LaunchRequestError as exc:
        options, error = _options_from({}), str(exc)
    if tab == "imaging" and error is None:
        try:
            launch = create_launch(
                patient.id, options["study"], options["need_patient_banner"], Faults.from_mapping(options["faults"])
            )
        except LaunchRequestError as exc:
            error = str(exc)
    studies = sorted(patient.studies, key=lambda s: (s.started is None, s.started), reverse=True)
    return render_template(
        "ehr_chart.html",
        patient=patient,
        studies=studies,
        tab=tab,
        launch=launch,
        options=options,
        error=error,
        window_query=_window_query(options),
        fault_flags=FAULT_FLAGS,
    ), (400 if error else 200)


@bp.get("/patients/<patient_id>/launch")
def launch_window(patient_id: str):
    """Fresh launch for a new window: redirect to the app's launch URL (same options as the query)."""
    patient = _patient_or_404(patient_id)
    try:
        options = _options_from(request.args)
        launch = create_launch(
            patient.id, options["study"], options["need_patient_banner"], Faults.from_mapping(options["faults"])
        )
    except LaunchRequestError as exc:
        return render_template("ehr_error.html", message=str(exc)), 400
    return redirect(launch["launch_url"], code=302)


@bp.post("/api/launches")
def api_create_launch():
    """``POST /ehr/api/launches`` JSON ``{"patient", "study"?, "need_patient_banner"?, "faults"?}`` -> 201.

    Also ``encounter``, ``fhir_context``, ``intent``, ``tenant``, ``access_token_lifetime``
    (see :func:`sandbox.launches.parse_launch_options`).

    400 ``{"error": ...}`` for a bad body, unknown patient, foreign study or bad fault.
    """
    body = request.get_json(silent=True)
    if not isinstance(body, dict) or not isinstance(body.get("patient"), str):
        return jsonify(error="JSON body with a string 'patient' is required"), 400
    unknown = set(body) - {"patient", "study", "need_patient_banner", "faults", *LAUNCH_OPTION_KEYS}
    if unknown:
        return jsonify(error=f"unknown field(s): {', '.join(sorted(unknown))}"), 400
    study = body.get("study")
    banner = body.get("need_patient_banner", True)
    if (study is not None and not isinstance(study, str)) or not isinstance(banner, bool):
        return jsonify(error="'study' must be a string or null, 'need_patient_banner' a boolean"), 400
    try:
        faults = Faults.from_mapping(body.get("faults"))
        result = create_launch(body["patient"], study, banner, faults,
                               {k: body[k] for k in LAUNCH_OPTION_KEYS if k in body})
    except LaunchRequestError as exc:
        return jsonify(error=str(exc)), 400
    return jsonify(result), 201


@bp.get("/smart-style.json")
def smart_style():
    """SMART styling JSON (SMART App Launch 2.2 §Styling), CORS ``*``."""
    response = jsonify(SMART_STYLE)
    response.headers["Access-Control-Allow-Origin"] = "*"
    return response

"""The baseline: "the fhirclient way", a minimal Flask app written as fhirclient's documentation shows.

Modelled on fhirclient's own ``flask_app.py`` example and README (client-py):
the client's state lives in the Flask session (``save_func``), every request
builds a ``fhirclient.client.FHIRClient`` from the settings or from that
state, ``authorize_url`` (which fetches the server's ``metadata`` first, on
every launch since each launch starts a new client) starts the EHR launch,
``handle_callback(request.url)`` exchanges the code, and the list is read
with the models: ``Patient.read`` and
``ImagingStudy.where({...}).perform_resources(server)``, which follows the
Bundle's ``next`` links. Each ``FHIRClient`` has its own ``FHIRServer`` and so
its own ``requests.Session``: connections are not reused across requests.

One deliberate help so the comparison is about client design, not page size:
the search asks for the same ``_count`` as the product's registration
(``fhir.page_size``; the docs' ``where({'patient': id})`` would get the EHR's
default of 50 per page). It renders the same markers the bench's browser
checks (``div.app`` data attributes, the study count, one row per study).
"""

from __future__ import annotations

import html
import uuid
import warnings

from flask import Flask, redirect, request, session
from fhirclient import client
from fhirclient.models.imagingstudy import ImagingStudy
from fhirclient.models.patient import Patient

SCOPE = "patient/Patient.read patient/ImagingStudy.read"


def create_app(registration: dict, secret_key: str) -> Flask:
    """The baseline app for the first EHR of a ``smart-launch.json`` document (same URLs as the product)."""
    ehr = registration["ehrs"][0]
    page_size = int(registration.get("fhir", {}).get("page_size", 50))
    settings = {"app_id": ehr["client_id"], "redirect_uri": registration["app"]["redirect_uri"], "scope": SCOPE}
    app = Flask(__name__)
    app.secret_key = secret_key

    def _save_state(state):
        session["state"] = state

    def _get_smart(launch_settings: dict | None = None) -> client.FHIRClient:
        state = session.get("state")
        if launch_settings is None and state:
            return client.FHIRClient(state=state, save_func=_save_state)
        return client.FHIRClient(settings=launch_settings, save_func=_save_state)

    @app.get("/healthz")
    def healthz():
        return "ok"

    @app.get("/launch")
    def launch():
        iss, launch_token = request.args.get("iss"), request.args.get("launch")
        if iss != ehr["iss"] or not launch_token:
            return "unknown iss or no launch", 400
        session.clear()
        smart = _get_smart({**settings, "api_base": iss, "launch_token": launch_token})
        return redirect(smart.authorize_url)

    @app.get("/callback")
    def callback():
        smart = _get_smart()
        smart.handle_callback(request.url)
        session["launch_id"] = uuid.uuid4().hex
        return redirect(f"/l/{session['launch_id']}/", code=303)

    @app.get("/l/<launch_id>/")
    def study_list(launch_id: str):
        if launch_id != session.get("launch_id"):
            return "not this browser's launch", 403
        smart = _get_smart()
        patient = Patient.read(smart.patient_id, smart.server)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            studies = ImagingStudy.where({"patient": smart.patient_id, "_count": str(page_size)}
                                         ).perform_resources(smart.server)
        name = smart.human_name(patient.name[0]) if patient.name else smart.patient_id
        rows = "".join(
            f'<tr data-study-id="{html.escape(study.id or "")}"><td>{html.escape(study.started.isostring if study.started else "")}'
            f'</td><td>{html.escape(", ".join(m.code for m in study.modality or []))}</td>'
            f'<td>{html.escape(study.description or "")}</td></tr>' for study in studies)
        return (f'<!doctype html><title>Imaging studies</title><div class="app" data-launch-id="{launch_id}" '
                f'data-patient-id="{html.escape(smart.patient_id)}"><h1>{html.escape(name)}</h1>'
                f'<p><span class="count" id="study-count">{len(studies)}</span> studies</p>'
                f'<table>{rows}</table></div>')

    return app

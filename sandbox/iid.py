"""Demo IHE IID Image Display at ``/IHEInvokeImageDisplay`` (IHE RAD-106, RAD TF-2 §4.106).

Validation errors are HTML pages (400; 404 for an unknown study or patient).
The display has no authentication of its own (a production viewer would use
its own SSO); it may be framed by the app origin (CSP ``frame-ancestors``).
Images: ``/IHEInvokeImageDisplay/instances/<sop_instance_uid>/frames/<n>.png``.
"""

from __future__ import annotations

from flask import Blueprint, Response, abort, render_template, request, url_for

from .iid_request import IIDRequest, IIDRequestError, parse_iid_request
from .records import MRN_SYSTEM, PATIENT_ID_ISSUER_OID, StudyRecord
from .render import FrameOutOfRange, render_png
from .state import get_state

bp = Blueprint("iid", __name__, url_prefix="/IHEInvokeImageDisplay")

HIDDEN_STATUSES = ("entered-in-error", "cancelled")


@bp.after_request
def _frame_policy(response: Response) -> Response:
    app_origin = get_state().config["APP_ORIGIN"]
    response.headers["Content-Security-Policy"] = (
        "default-src 'self'; img-src 'self'; script-src 'self'; style-src 'self'; "
        f"frame-ancestors 'self' {app_origin}"
    )
    return response


def _error(message: str, status: int):
    return render_template("iid_error.html", message=message, status=status), status


def resolve_studies(iid: IIDRequest) -> list[StudyRecord]:
    """Studies to display for a validated request (raises :class:`IIDRequestError` 404 if unknown).

    STUDY: in the order requested. PATIENT: studies with a UID and images,
    excluding ``entered-in-error``/``cancelled``, filtered by date range and
    modality, newest first, cut to ``mostRecentResults``.
    """
    dataset = get_state().dataset
    if iid.request_type == "STUDY":
        studies = []
        for uid in iid.study_instance_uids:
            study = dataset.study_by_uid(uid)
            if study is None or not study.series:
                raise IIDRequestError(f"no study with Study Instance UID {uid}", 404)
            studies.append(study)
        for accession in iid.accession_numbers:
            study = dataset.study_by_accession(accession)
            if study is None or not study.series:
                raise IIDRequestError(f"no study with accession number {accession}", 404)
            studies.append(study)
        return list({s.id: s for s in studies}.values())
    patient = dataset.patient(iid.patient_id) or dataset.patient_by_mrn(iid.patient_id)
    if patient is None:
        raise IIDRequestError(f"no patient {iid.patient_id}", 404)
    selected = []
    for study in patient.studies:
        if not study.study_instance_uid or not study.series or study.status in HIDDEN_STATUSES:
            continue
        if iid.lower_datetime and (not study.started or study.started < iid.lower_datetime):
            continue
        if iid.upper_datetime and (not study.started or study.started > iid.upper_datetime):
            continue
        if iid.modalities_in_study and not set(iid.modalities_in_study) & set(study.modalities):
            continue
        selected.append(study)
    selected.sort(key=lambda s: (s.started, s.id), reverse=True)
    return selected[: iid.most_recent_results] if iid.most_recent_results else selected


def _frame_urls(series) -> list[str]:
    return [
        url_for("iid.frame_png", sop_instance_uid=instance.sop_instance_uid, frame_number=n)
        for instance in series.instances
        for n in range(1, instance.frames + 1)
    ]


@bp.get("")
def display():
    """``GET /IHEInvokeImageDisplay?requestType=...`` — the viewer page (HTML)."""
    try:
        iid = parse_iid_request(request.args)
        studies = resolve_studies(iid)
    except IIDRequestError as error:
        return _error(str(error), error.status)
    dataset = get_state().dataset
    views = [
        {
            "study": study,
            "patient": dataset.patient(study.patient_id),
            "series": [{"series": s, "frames": _frame_urls(s)} for s in study.series],
        }
        for study in studies
    ]
    return render_template(
        "iid_viewer.html",
        iid=iid,
        views=views,
        mrn_system=MRN_SYSTEM,
        issuer=PATIENT_ID_ISSUER_OID,
    )


@bp.get("/instances/<sop_instance_uid>/frames/<int:frame_number>.png")
def frame_png(sop_instance_uid: str, frame_number: int):
    """PNG of one frame (1-based) of an instance known to the sandbox; 404 otherwise."""
    instance = get_state().dataset.instance(sop_instance_uid)
    if instance is None:
        abort(404)
    try:
        png = render_png(instance.source_file, frame_number)
    except FrameOutOfRange:
        abort(404)
    return Response(png, content_type="image/png", headers={"Cache-Control": "private, max-age=3600"})

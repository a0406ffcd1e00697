"""Whose launch a failing request belongs to, for its error page: the EHR, the patient, a relaunch that can work.

The error handler (:func:`app.web.errors.register_error_handlers`) asks
:func:`launch_of_error` once per failure, so no ``raise`` has to carry it:

* a request under ``/l/<launch_id>/…`` re-reads that launch *for this browser*
  (:meth:`~app.launches.store.LaunchStore.get_active` checks the binding cookie), so
  the page can only ever name this browser's own launch, never another's; an unknown or
  expired launch names nothing;
* a failed callback or cookie check (:class:`~app.launches.errors.BrowserMismatch`)
  names the EHR of the discarded pending launch (no patient is known yet).

Relaunch (SMART App Launch 2.2 §Launch App): a standalone launch can be started again
at ``/launch?iss=…`` when its registration still allows standalone launch; an EHR launch
cannot (its ``launch`` id is single use), so the page says to relaunch from the EHR and
shows no button. Nothing here is logged; the patient label is only rendered in the page
(``Cache-Control: no-store``), never put in a URL.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from urllib.parse import urlencode

from flask import has_request_context, request, url_for

from ..launches.context import kept_study_list
from ..launches.errors import BrowserMismatch, LaunchNotFound, StoreUnavailable
from ..urls import origin_string
from .security import browser_binding
from .services import services

log = logging.getLogger(__name__)

MAX_LABEL_LENGTH = 120


@dataclass(frozen=True)
class ErrorLaunch:
    """The launch a failure belongs to, as its page shows it.

    ``ehr_name``: the registration's display name (``ehrs[].name``), or the FHIR
    server's origin when the registration is gone; ``patient_label``: the banner name
    when the launch has read it, else ``"patient <FHIR id>"``, ``None`` before the
    callback; ``relaunch_url``: ``/launch?iss=…`` for a standalone launch whose
    registration allows it, else ``None``; ``ehr_launch``: started from the EHR (relaunch there).
    """

    ehr_name: str
    patient_label: str | None = None
    relaunch_url: str | None = None
    ehr_launch: bool = False


def standalone_relaunch_url(iss: str) -> str:
    """``/launch?iss=<iss>``: a fresh standalone launch of the same FHIR server."""
    return url_for("views.launch") + "?" + urlencode({"iss": iss})


def _ehr(iss: str, launch: str | None) -> ErrorLaunch:
    ehr = services().settings.find_ehr(iss)
    relaunch = standalone_relaunch_url(iss) if ehr is not None and ehr.standalone and not launch else None
    return ErrorLaunch(ehr_name=ehr.name if ehr is not None else origin_string(iss), relaunch_url=relaunch,
                       ehr_launch=bool(launch))


def _patient_label(stored) -> str:
    state = stored.state
    study_list = kept_study_list(services().store, stored)
    banner = study_list.banner if study_list is not None else None
    name = banner.name if banner is not None and banner.patient_id == state.patient else None
    label = name if name else f"patient {state.patient}"
    return label[:MAX_LABEL_LENGTH]


def launch_of_error(exc: BaseException) -> ErrorLaunch | None:
    """The :class:`ErrorLaunch` of the failing request, or ``None`` when it belongs to no launch of this browser.

    Never raises: a store that cannot be read gives ``None`` (the error page still renders).
    """
    if not has_request_context():
        return None
    try:
        if isinstance(exc, BrowserMismatch):
            return _ehr(exc.pending.iss, exc.pending.launch)
        launch_id = (request.view_args or {}).get("launch_id")
        if not launch_id or isinstance(exc, (LaunchNotFound, StoreUnavailable)):
            return None
        stored = services().store.get_active(launch_id, browser_binding())
        found = _ehr(stored.state.iss, stored.state.launch)
        return ErrorLaunch(ehr_name=found.ehr_name, patient_label=_patient_label(stored),
                           relaunch_url=found.relaunch_url, ehr_launch=found.ehr_launch)
    except Exception as lookup_error:  # the error path must not fail
        log.info("error page: launch not identified (%s)", type(lookup_error).__name__)
        return None

"""IHE Invoke Image Display (IID) request URLs, transaction RAD-106.

IHE RAD TF-2 4.106.4.1.2 (Message Semantics): an HTTP GET on the Image
Display's ``…/IHEInvokeImageDisplay`` with ``requestType`` ``STUDY`` (keys
``studyUID`` or ``accessionNumber``, comma-separated lists, never both) or
``PATIENT`` (``patientID`` as an HL7 v2 CX with assigning authority, optional
``lowerDateTime``, ``upperDateTime``, ``mostRecentResults``,
``modalitiesInStudy``), plus ``viewerType``, ``diagnosticQuality`` and
``keyImagesOnly``. Every value is URL-encoded by :func:`urllib.parse.urlencode`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Sequence
from urllib.parse import urlencode, urlsplit, urlunsplit

from ..dicom import normalize_study_uid

_MODALITY = re.compile(r"^[A-Z0-9]{1,16}$")
_CX_COMPONENT_FORBIDDEN = re.compile(r"[\^~\\&|]")


class IIDRequestError(ValueError):
    """The parameters cannot form a valid RAD-106 request; the message names the parameter."""


@dataclass(frozen=True)
class DisplayOptions:
    """Request-wide options: ``viewerType`` (e.g. ``IHE_BIR``), ``diagnosticQuality``, ``keyImagesOnly``."""

    viewer_type: str | None = None
    diagnostic_quality: bool | None = None
    key_images_only: bool | None = None

    def params(self) -> list[tuple[str, str]]:
        """Query parameters in RAD-106 spelling; booleans as ``true``/``false``."""
        out: list[tuple[str, str]] = []
        if self.viewer_type:
            out.append(("viewerType", self.viewer_type))
        if self.diagnostic_quality is not None:
            out.append(("diagnosticQuality", "true" if self.diagnostic_quality else "false"))
        if self.key_images_only is not None:
            out.append(("keyImagesOnly", "true" if self.key_images_only else "false"))
        return out


def _with_query(base_url: str, params: list[tuple[str, str]]) -> str:
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise IIDRequestError("base_url must be an absolute http(s) URL")
    query = "&".join(q for q in (parts.query, urlencode(params)) if q)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, ""))


def study_request(base_url: str, *, study_uids: Sequence[str] = (), accession_numbers: Sequence[str] = (),
                  options: DisplayOptions = DisplayOptions()) -> str:
    """URL of a ``requestType=STUDY`` request for one or more studies (several = comparison).

    Exactly one of ``study_uids`` (``urn:oid:`` prefixes stripped, each must be a
    valid DICOM UID) or ``accession_numbers`` (no commas) is given; raises
    :class:`IIDRequestError` otherwise.
    Example: ``…/IHEInvokeImageDisplay?requestType=STUDY&studyUID=2.25.1&viewerType=IHE_BIR``.
    """
    if bool(study_uids) == bool(accession_numbers):
        raise IIDRequestError("exactly one of studyUID or accessionNumber is required")
    params: list[tuple[str, str]] = [("requestType", "STUDY")]
    if study_uids:
        uids = []
        for value in study_uids:
            uid = normalize_study_uid(value)
            if uid is None:
                raise IIDRequestError("studyUID: not a valid DICOM UID")
            uids.append(uid)
        params.append(("studyUID", ",".join(dict.fromkeys(uids))))
    else:
        if any(not a or "," in a for a in accession_numbers):
            raise IIDRequestError("accessionNumber: empty or contains a comma")
        params.append(("accessionNumber", ",".join(dict.fromkeys(accession_numbers))))
    return _with_query(base_url, params + options.params())


def patient_id_cx(patient_id: str, assigning_authority_oid: str) -> str:
    """HL7 v2 CX ``id^^^&oid&ISO`` (RAD TF-2 4.106.4.1.2.2: patientID with its issuer)."""
    if not patient_id or _CX_COMPONENT_FORBIDDEN.search(patient_id):
        raise IIDRequestError("patientID: empty or contains HL7 v2 delimiters")
    if not normalize_study_uid(assigning_authority_oid):
        raise IIDRequestError("patientID: assigning authority must be an ISO OID")
    return f"{patient_id}^^^&{assigning_authority_oid}&ISO"


def _dicom_datetime(value: datetime) -> str:
    return value.strftime("%Y%m%d%H%M%S")


def patient_request(base_url: str, *, patient_id: str, assigning_authority_oid: str,
                    lower_date_time: datetime | None = None, upper_date_time: datetime | None = None,
                    most_recent_results: int | None = None, modalities_in_study: Sequence[str] = (),
                    options: DisplayOptions = DisplayOptions()) -> str:
    """URL of a ``requestType=PATIENT`` request (all of one patient's studies, optionally filtered).

    ``lowerDateTime``/``upperDateTime`` as DICOM DT ``YYYYMMDDhhmmss``;
    ``mostRecentResults`` a positive integer; ``modalitiesInStudy`` DICOM
    modality codes, comma-separated. Raises :class:`IIDRequestError`.
    """
    params: list[tuple[str, str]] = [("requestType", "PATIENT"),
                                     ("patientID", patient_id_cx(patient_id, assigning_authority_oid))]
    if lower_date_time and upper_date_time and lower_date_time > upper_date_time:
        raise IIDRequestError("lowerDateTime is after upperDateTime")
    if lower_date_time:
        params.append(("lowerDateTime", _dicom_datetime(lower_date_time)))
    if upper_date_time:
        params.append(("upperDateTime", _dicom_datetime(upper_date_time)))
    if most_recent_results is not None:
        if isinstance(most_recent_results, bool) or most_recent_results < 1:
            raise IIDRequestError("mostRecentResults must be a positive integer")
        params.append(("mostRecentResults", str(most_recent_results)))
    if modalities_in_study:
        if any(not _MODALITY.match(m) for m in modalities_in_study):
            raise IIDRequestError("modalitiesInStudy: not a DICOM modality code")
        params.append(("modalitiesInStudy", ",".join(dict.fromkeys(modalities_in_study))))
    return _with_query(base_url, params + options.params())

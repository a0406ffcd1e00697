"""Requests to one DICOMweb service (DICOM PS3.18) through the guarded outbound client.

* QIDO-RS (PS3.18 §10.6): ``GET {base}/studies?…``, ``/studies/{study}/series``,
  ``/studies/{study}/series/{series}/instances``; ``Accept: application/dicom+json``
  (§8.7.3.4 / Annex F DICOM JSON), the answer a JSON array (empty for no match;
  ``204 No Content`` is read as no match).
* Thumbnails (§10.4.1.1.5 / §8.3.5.1.4, ``/thumbnail``): ``Accept: image/jpeg, image/png;q=0.9``;
  rendered resources (§10.4.1.1.3, ``/rendered``): ``Accept: image/jpeg`` alone (the media type every
  origin server supports for rendered images, §8.7.3.5; Orthanc 1.10 answers 400 "Parameter out of
  range" to an Accept listing two types). ``viewport=vw,vh`` (§8.3.5.1.3) is sent with a literal
  comma (Orthanc 1.10 refuses ``%2C``).

Every URL is the base plus path segments that are validated DICOM UIDs (PS3.5 §9.1), so
nothing from upstream data shapes the path. Policy kinds: ``dicomweb`` (QIDO JSON) and
``thumbnail`` (images), limits in :data:`DICOMWEB_LIMITS`; the allowlist is the base's origin;
redirects are never followed (a credential never follows a ``Location``). Errors are
:mod:`app.dicomweb.errors` facts and :mod:`app.outbound.errors` transport facts.

Why not ``dicomweb-client``: its session interface passes ``params`` and ``stream`` to a
``requests.Session`` and raises ``requests.HTTPError`` for any status, while the guarded
client is the one way out (allowlist, deadline, byte cap) and the fallback chain needs the
status as a fact; requests' ``params`` encoding also turns the viewport comma into ``%2C``.
The tests use ``dicomweb-client`` as an independent reader of the same services.
"""

from __future__ import annotations

from typing import Any, Iterable
from urllib.parse import quote

from requests.auth import HTTPBasicAuth
from authlib.integrations.requests_client import OAuth2Auth

from ..dicom import normalize_study_uid
from ..outbound import ExchangeLimits, InvalidJson, OutboundClient, RedirectRefused, UpstreamResponse
from ..outbound.policy import MiB
from ..urls import origin_of
from .access import BASIC, BEARER, Access
from .errors import DicomwebBadContent, DicomwebHttpError

DICOM_JSON = "application/dicom+json"
QIDO_ACCEPT = "application/dicom+json, application/json;q=0.9"
IMAGE_ACCEPT = "image/jpeg, image/png;q=0.9"
RENDERED_ACCEPT = "image/jpeg"
IMAGE_TYPES = frozenset({"image/jpeg", "image/png"})

DICOMWEB_LIMITS = {
    # QIDO-RS answers (DICOM JSON arrays; a study list of a few hundred studies is well under 4 MiB).
    "dicomweb": ExchangeLimits(max_bytes=4 * MiB, deadline_seconds=20.0),
    # thumbnail / rendered images (a rendered frame without viewport may be a full-size JPEG).
    "thumbnail": ExchangeLimits(max_bytes=4 * MiB, deadline_seconds=15.0),
}


def _segment(uid: str) -> str:
    """A UID as a path segment; raises ``ValueError`` when it is not a valid DICOM UID."""
    normal = normalize_study_uid(uid)
    if normal is None:
        raise ValueError("not a valid DICOM UID")
    return normal


def _query(params: Iterable[tuple[str, str]]) -> str:
    """``a=b&c=d``, names and values percent-encoded except ``,`` (the viewport's ``vw,vh``)."""
    return "&".join(f"{quote(k, safe='')}={quote(str(v), safe=',')}" for k, v in params)


class DicomwebService:
    """One DICOMweb base (``base_url``, no trailing slash) with one :class:`~app.dicomweb.access.Access`.

    ``bearer_token``: the launch's access token (only for :data:`~app.dicomweb.access.BEARER` access).
    """

    def __init__(self, base_url: str, outbound: OutboundClient, access: Access, bearer_token: str | None = None):
        self.base_url = base_url.rstrip("/")
        self.access = access
        self.bearer_token = bearer_token if access.mode == BEARER else None
        self._outbound = outbound
        origin = origin_of(self.base_url)
        self._json_policy = outbound.policy("dicomweb", origin)
        self._image_policy = outbound.policy("thumbnail", origin)
        if access.mode == BEARER:
            if not bearer_token:
                raise ValueError("bearer access needs the launch's access token")
            self._auth: Any = OAuth2Auth({"access_token": bearer_token, "token_type": "Bearer"})
        elif access.mode == BASIC and access.basic:
            self._auth = HTTPBasicAuth(*access.basic)
        else:
            raise ValueError("unknown access mode")

    def with_token(self, bearer_token: str) -> "DicomwebService":
        """The same service with another SMART access token (after a renewal); only for bearer access."""
        if self.access.mode != BEARER:
            raise ValueError("only bearer access carries the launch's token")
        return DicomwebService(self.base_url, self._outbound, self.access, bearer_token=bearer_token)

    def __repr__(self) -> str:  # never the token
        return f"DicomwebService({self.base_url!r}, {self.access!r})"

    def _get(self, operation: str, path: str, params: Iterable[tuple[str, str]], accept: str,
             image: bool) -> UpstreamResponse:
        query = _query(params)
        url = f"{self.base_url}/{path}" + (f"?{query}" if query else "")
        try:
            response = self._outbound.get(url, policy=self._image_policy if image else self._json_policy,
                                          headers={"Accept": accept}, auth=self._auth)
        except RedirectRefused as exc:
            raise DicomwebHttpError(operation, exc.status or 300) from None
        if response.status >= 300:
            raise DicomwebHttpError(operation, response.status)
        return response

    # -- QIDO-RS (PS3.18 §10.6) ----------------------------------------------------------
    def _search(self, operation: str, path: str, params: Iterable[tuple[str, str]]) -> list[dict]:
        response = self._get(operation, path, params, QIDO_ACCEPT, image=False)
        if response.status == 204 or not response.content.strip():
            return []
        if response.media_type not in (DICOM_JSON, "application/json"):
            raise DicomwebBadContent(operation, "content-type", (response.media_type or "none")[:100])
        try:
            body = response.json()
        except InvalidJson:
            raise DicomwebBadContent(operation, "invalid-json") from None
        except Exception:  # UnexpectedContentType, JsonTooDeep
            raise DicomwebBadContent(operation, "invalid-json") from None
        if not isinstance(body, list):
            raise DicomwebBadContent(operation, "not-an-array")
        return [item for item in body if isinstance(item, dict)]

    def search_studies(self, filters: Iterable[tuple[str, str]], include_fields: Iterable[str] = (),
                       limit: int | None = None) -> list[dict]:
        """``GET {base}/studies?{filters}&includefield=…&limit=…``: DICOM JSON objects (one per study)."""
        params = list(filters) + [("includefield", f) for f in include_fields]
        if limit is not None:
            params.append(("limit", str(limit)))
        return self._search("qido-studies", "studies", params)

    def search_series(self, study_uid: str) -> list[dict]:
        """``GET {base}/studies/{study}/series``: one DICOM JSON object per series."""
        return self._search("qido-series", f"studies/{_segment(study_uid)}/series", ())

    def search_instances(self, study_uid: str, series_uid: str) -> list[dict]:
        """``GET {base}/studies/{study}/series/{series}/instances``: one DICOM JSON object per instance."""
        return self._search("qido-instances",
                            f"studies/{_segment(study_uid)}/series/{_segment(series_uid)}/instances", ())

    # -- images (PS3.18 §10.4) -----------------------------------------------------------
    def _image(self, operation: str, path: str, viewport: tuple[int, int] | None,
               accept: str = IMAGE_ACCEPT) -> tuple[bytes, str]:
        params = [("viewport", f"{viewport[0]},{viewport[1]}")] if viewport else []
        response = self._get(operation, path, params, accept, image=True)
        if response.media_type not in IMAGE_TYPES:
            raise DicomwebBadContent(operation, "content-type", (response.media_type or "none")[:100])
        return response.content, response.media_type

    def study_thumbnail(self, study_uid: str, viewport: tuple[int, int]) -> tuple[bytes, str]:
        """``GET {base}/studies/{study}/thumbnail?viewport=vw,vh``: ``(bytes, media type)``."""
        return self._image("study-thumbnail", f"studies/{_segment(study_uid)}/thumbnail", viewport)

    def series_thumbnail(self, study_uid: str, series_uid: str, viewport: tuple[int, int]) -> tuple[bytes, str]:
        """``GET {base}/studies/{study}/series/{series}/thumbnail?viewport=vw,vh``."""
        return self._image("series-thumbnail",
                           f"studies/{_segment(study_uid)}/series/{_segment(series_uid)}/thumbnail", viewport)

    def rendered(self, study_uid: str, series_uid: str, instance_uid: str,
                 viewport: tuple[int, int] | None) -> tuple[bytes, str]:
        """``GET {base}/studies/{study}/series/{series}/instances/{sop}/rendered[?viewport=vw,vh]``."""
        return self._image("rendered", f"studies/{_segment(study_uid)}/series/{_segment(series_uid)}/instances/"
                                       f"{_segment(instance_uid)}/rendered", viewport, RENDERED_ACCEPT)

"""Images at a glance for one launch: its studies' endpoints resolved, DICOMweb access, thumbnails.

* :func:`attach_endpoints`: after a FHIR list is fetched, the references its summaries left
  pending are resolved (Bundle includes, then cached ``Endpoint`` reads on ``iss``), and an
  ``ihe-iid`` address is kept as the study's viewer only when its origin is in the registration's
  ``viewer_origins``.
* :class:`LaunchImages`: the per-process helper the views use: which DICOMweb base a study's
  images come from (its ``dicom-wado-rs`` Endpoint, else the registration's ``dicomweb.base_url``),
  which credentials it gets (:func:`app.dicomweb.access.access_for`; the smart-configuration's
  ``associated_endpoints`` from the cached discovery), the thumbnail (cached per launch), and whether an
  ``iss`` declares ImagingStudy search (:class:`~app.fhir.capabilities.CapabilityCache`, used by
  :func:`app.launches.qido_list.first_page_or_qido`).
"""

from __future__ import annotations

import logging
from dataclasses import replace

from ..config import EhrRegistration
from ..dicomweb.access import BEARER, access_for
from ..dicomweb.errors import DicomwebError, DicomwebHttpError
from ..dicomweb.images import Thumbnail
from ..dicomweb.service import DicomwebService
from ..dicomweb.thumbnails import StudyRef, ThumbnailCache, fetch_thumbnail
from ..fhir.capabilities import CapabilityCache
from ..fhir.client import FhirClient
from ..fhir.endpoints import (EndpointFacts, EndpointReader, IncludedEndpoints, StudyEndpoints, allowed_viewer,
                              resolve_pending)
from ..fhir.imaging import StudySummary
from ..fhir.study_list import StudyList
from ..outbound import OutboundClient, OutboundError
from ..smart.discovery import SmartDiscovery
from ..smart.errors import DiscoveryFailed
from .context import LaunchContext
from .errors import AuthorizationExpired

log = logging.getLogger(__name__)

MAX_ENDPOINT_READS_PER_LIST = 8
DEFAULT_THUMBNAIL_TTL_SECONDS = 300
FAILURE_TTL_SECONDS = 30  # a failed service is asked again sooner than a study without thumbnail


def attach_endpoints(study_list: StudyList, included: IncludedEndpoints | None, client: FhirClient,
                     ehr: EhrRegistration, reader: EndpointReader,
                     max_reads: int = MAX_ENDPOINT_READS_PER_LIST) -> StudyList:
    """``study_list`` with each study's pending Endpoint references resolved and ``viewer_base_url`` set.

    At most ``max_reads`` distinct ``Endpoint`` ids are read per list (others stay unresolved); reads go
    through ``client`` (the token stays on the origin of ``iss``) and ``reader``'s cache. Never raises for an
    unreadable Endpoint.
    """
    asked: dict[str, EndpointFacts | None] = {}

    def read(endpoint_id: str) -> EndpointFacts | None:
        if endpoint_id not in asked:
            if len(asked) >= max_reads:
                return None
            asked[endpoint_id] = reader.read(client.fhir_base_url, endpoint_id,
                                             lambda i: client.read("Endpoint", i))
        return asked[endpoint_id]

    studies = []
    resolved: dict[tuple, dict] = {}  # studies of one list mostly name the same Endpoints: resolved once
    for study in study_list.studies:
        if study.endpoint_refs or study.iid_address:
            key = (study.endpoint_refs, study.iid_address, study.dicomweb_base)
            changes = resolved.get(key)
            if changes is None:
                found = resolve_pending(study.endpoint_refs, StudyEndpoints(study.iid_address, study.dicomweb_base),
                                        included=included, fhir_base_url=client.fhir_base_url, read=read)
                changes = resolved[key] = {"endpoint_refs": (), "iid_address": found.iid_address,
                                           "dicomweb_base": found.dicomweb_base,
                                           "viewer_base_url": allowed_viewer(found.iid_address, ehr.viewer_origins)}
            study = study.with_changes(changes)
        studies.append(study)
    return replace(study_list, studies=studies)


class LaunchImages:
    """Per-process: DICOMweb access and thumbnails of launches (thread-safe)."""

    def __init__(self, discovery: SmartDiscovery, outbound: OutboundClient,
                 cache: ThumbnailCache | None = None, endpoint_reader: EndpointReader | None = None,
                 capabilities: CapabilityCache | None = None):
        self.discovery = discovery
        self.outbound = outbound
        self.cache = cache or ThumbnailCache()
        self.endpoint_reader = endpoint_reader or EndpointReader()
        self.capabilities = capabilities or CapabilityCache()  # per iss: does it offer ImagingStudy search?

    def associated_endpoints(self, iss: str) -> tuple[str, ...]:
        """The smart-configuration's ``associated_endpoints`` URLs of ``iss`` (cached discovery; ``()`` on failure)."""
        try:
            return self.discovery.discover(iss).associated_endpoints
        except (DiscoveryFailed, OutboundError, ValueError):
            return ()

    @staticmethod
    def base_for(context: LaunchContext, study: StudySummary) -> str | None:
        """Where the study's images are: its ``dicom-wado-rs`` Endpoint, else the registration's DICOMweb base."""
        if study.dicomweb_base:
            return study.dicomweb_base
        return context.ehr.dicomweb.base_url if context.ehr.dicomweb else None

    def service(self, context: LaunchContext, base_url: str) -> DicomwebService | None:
        """A :class:`DicomwebService` for ``base_url`` with the credentials meant for it, else ``None``."""
        access = access_for(base_url, iss=context.state.iss, associated_endpoints=self.associated_endpoints(
            context.state.iss), registered=context.ehr.dicomweb)
        if access is None:
            return None
        token = context.access_token() if access.mode == BEARER else None
        return DicomwebService(base_url, self.outbound, access, bearer_token=token)

    def ttl(self, context: LaunchContext) -> int:
        """Seconds a thumbnail is kept and may be cached by the browser."""
        dicomweb = context.ehr.dicomweb
        return dicomweb.thumbnail_ttl_seconds if dicomweb else DEFAULT_THUMBNAIL_TTL_SECONDS

    def thumbnail(self, context: LaunchContext, study: StudySummary) -> Thumbnail | None:
        """The study's thumbnail (cached per launch and study), or ``None``: no UID, no DICOMweb base, no
        credentials for it, no step offered one, or the service failed (logged by class, no URL, no PHI).

        A 401 to the launch's SMART token renews the token once (:meth:`LaunchContext.renew_token`, the
        renewal lease :meth:`LaunchContext.with_token` uses) and the chain is asked again from its first step;
        a 401 to PACS credentials from the environment (basic) is just "no thumbnail" (nothing to renew)."""
        hit, cached = self.cache.get(context.id, study.id or "")
        if hit:
            return cached
        thumbnail, failed = None, False
        base = self.base_for(context, study)
        if study.study_instance_uid and base:
            ref = StudyRef(study.study_instance_uid, study.thumbnail_series_uid, study.thumbnail_instance_uid)
            try:
                service = self.service(context, base)
                if service is not None:
                    try:
                        thumbnail = fetch_thumbnail(service, ref)
                    except DicomwebHttpError as exc:
                        if exc.status != 401 or service.access.mode != BEARER:
                            raise  # PACS credentials refused: no thumbnail
                        # the launch's token was refused: renew it once (the store's renewal lease, shared with
                        # concurrent requests of this launch) and ask again; a second 401 is no thumbnail
                        renewed = context.renew_token(service.bearer_token or "")
                        thumbnail = fetch_thumbnail(service.with_token(renewed), ref)
            except (DicomwebError, OutboundError, AuthorizationExpired, ValueError) as exc:
                log.info("thumbnail unavailable: %s %s", type(exc).__name__, getattr(exc, "status", ""))
                failed = True
        ttl = min(self.ttl(context), FAILURE_TTL_SECONDS) if failed else self.ttl(context)
        self.cache.put(context.id, study.id or "", thumbnail, ttl)
        return thumbnail


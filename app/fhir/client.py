"""FHIR reads and searches for one launch, with the launch's bearer token, through the app's outbound session.

Every request goes through the guarded outbound client under a ``"fhir"``
policy allowing only the origin of ``iss``: the bearer token goes nowhere
else, redirects are never followed, each page is bounded in time and bytes
and its JSON decoded safely. A 2xx answer must be FHIR JSON. Failures are
raised as :mod:`app.fhir.errors` facts (401 as :class:`FhirUnauthorized`, so
the caller can renew the token) or transport facts (:mod:`app.outbound.errors`).

Paging follows FHIR R4 §3.1.1.5.6 (Paging) and §3.1.1.4.6: ``next`` links are
resolved against the page URL (RFC 3986 §5), followed only on the origin of
``iss``, at most ``max_pages`` pages, stopping at a repeated link; entries are
matches only with ``search.mode`` ``match`` (or none) and are de-duplicated by id.
Pages are decoded one at a time and dropped once their resources are handed on.
"""

from __future__ import annotations

import logging
import time
from contextlib import ExitStack
from typing import Any, Iterator
from urllib.parse import urljoin

from authlib.integrations.requests_client import OAuth2Auth

from ..outbound import (InvalidJson, OutboundClient, OutboundError, RedirectRefused, ResponseTooLarge,
                        UpstreamResponse, UpstreamTimeout)
from ..outbound.jsonsafe import GC_PAUSE_BYTES, is_json_media_type, paused_gc
from ..urls import base_dir, origin_of, same_origin
from .errors import FhirBadContent, FhirError, FhirHttpError, FhirRedirect, FhirUnauthorized
from .outcome import outcome_text

log = logging.getLogger(__name__)


FHIR_ACCEPT = "application/fhir+json, application/json;q=0.9"


def _json_body(response: UpstreamResponse) -> Any:
    """The decoded JSON body of an error answer, or ``None`` (not JSON, or not decodable)."""
    if not is_json_media_type(response.headers.get("Content-Type")):
        return None
    try:
        return response.json()
    except InvalidJson:
        return None


class FhirClient:
    """Reads and searches one FHIR server (``fhir_base_url``, the launch's ``iss``) with one access token."""

    def __init__(self, fhir_base_url: str, access_token: str, outbound: OutboundClient, *, included=None):
        """``included``: an object with ``add(entry)`` (e.g. :class:`~app.fhir.endpoints.IncludedEndpoints`)
        receiving the entries of searches' Bundles with ``search.mode`` ``include`` (and Endpoint entries
        without a mode), or ``None``."""
        self.fhir_base_url = fhir_base_url
        self.included = included
        self._base = base_dir(fhir_base_url)
        self._outbound = outbound
        self._policy = outbound.policy("fhir", origin_of(fhir_base_url))
        self._auth = OAuth2Auth({"access_token": access_token, "token_type": "Bearer"})

    def absolute(self, path_or_url: str) -> str:
        """A relative path (``"Patient/x"``) resolved against the base; absolute URLs unchanged."""
        return urljoin(self._base, path_or_url)

    def get_json(self, path_or_url: str, *, resource_type: str, interaction: str,
                 hold_gc: ExitStack | None = None) -> dict:
        """GET a FHIR resource or Bundle as a dict (``resourceType`` a string).

        ``hold_gc``: for a body of :data:`~app.outbound.jsonsafe.GC_PAUSE_BYTES` or more, the cyclic
        collector's pause (:func:`~app.outbound.jsonsafe.paused_gc`) is entered into this stack before
        decoding, so that it lasts until the caller closes the stack, once the decoded page is read and
        dropped (else the collector's next passes walk every object of the page: measured 25 µs per study
        on a 1,000-study page); it starts after the body is received, never during the network wait.

        ``resource_type`` / ``interaction`` (``"read"``, ``"search"``) say what it
        is for, in the errors raised: :class:`FhirUnauthorized` (401),
        :class:`FhirHttpError` (other ≥ 400), :class:`FhirRedirect` (3xx),
        :class:`FhirBadContent` (not FHIR JSON), a transport fact (timeout,
        no connection), and ``ValueError`` for a URL off the origin of ``iss``
        (nothing is sent).
        """
        url = self.absolute(path_or_url)
        if not same_origin(url, self.fhir_base_url):
            raise ValueError("the URL is not on the FHIR server's origin")
        try:
            response = self._outbound.get(url, policy=self._policy, headers={"Accept": FHIR_ACCEPT}, auth=self._auth)
        except RedirectRefused as exc:
            raise FhirRedirect(resource_type, interaction, exc.status or 0) from None
        status = response.status
        if status == 401:
            raise FhirUnauthorized(resource_type, interaction, outcome_text(_json_body(response)))
        if status >= 400:
            raise FhirHttpError(resource_type, interaction, status, outcome_text(_json_body(response)))
        if not is_json_media_type(response.headers.get("Content-Type")):
            media = (response.media_type or "none")[:100]
            raise FhirBadContent(resource_type, interaction, "content-type", media_type=media)
        if hold_gc is not None and len(response.content) >= GC_PAUSE_BYTES:
            hold_gc.enter_context(paused_gc())
        try:
            body = response.json()
        except InvalidJson:
            raise FhirBadContent(resource_type, interaction, "invalid-json") from None
        if not isinstance(body, dict) or not isinstance(body.get("resourceType"), str):
            raise FhirBadContent(resource_type, interaction, "not-a-resource")
        return body

    def read(self, resource_type: str, resource_id: str) -> dict:
        """``GET [base]/{resource_type}/{resource_id}`` (FHIR R4 §3.1.0.1 read); raises like :meth:`get_json`.

        A resource of another type is :class:`FhirBadContent` ``"wrong-resource-type"``.
        """
        body = self.get_json(f"{resource_type}/{resource_id}", resource_type=resource_type, interaction="read")
        if body["resourceType"] != resource_type:
            raise FhirBadContent(resource_type, "read", "wrong-resource-type", found=body["resourceType"][:64],
                                 outcome=outcome_text(body))
        return body

    def search(self, resource_type: str, first_path: str, *, max_pages: int, first_page: dict | None = None,
               deadline: float | None = None) -> "Search":
        """A search of ``resource_type`` starting at ``first_path``; iterate it for the matching resources.

        ``first_page``: an already fetched first Bundle (fetched concurrently by the caller);
        ``deadline``: ``time.monotonic()`` value after which no further page is requested.
        """
        return Search(self, resource_type, self.absolute(first_path), max_pages, first_page, deadline)


class Search:
    """One search across its pages: iterating yields each matching resource (a dict), page by page.

    After iteration: ``incomplete`` (why not every page was read, ``None`` when
    complete), ``warnings`` (OperationOutcome texts found in the Bundles),
    ``total`` (``Bundle.total`` of the first page, when an int), ``pages`` (read).
    Errors on the first page raise as :meth:`FhirClient.get_json`; a failure on a
    later page ends the search with ``incomplete`` set; 401 on any page raises.
    """

    def __init__(self, client: FhirClient, resource_type: str, url: str, max_pages: int, first_page: dict | None,
                 deadline: float | None = None):
        self._client = client
        self._deadline = deadline
        self.resource_type = resource_type
        self._url = url
        self._max_pages = max_pages
        self._first_page = first_page
        self.incomplete: str | None = None
        self.warnings: list[str] = []
        self.total: int | None = None
        self.pages = 0

    def _page(self, url: str) -> dict | None:
        """The Bundle at ``url``, or ``None`` with ``incomplete`` set when a later page fails."""
        if self._first_page is not None:
            bundle, self._first_page = self._first_page, None
        else:
            try:
                bundle = self._client.get_json(url, resource_type=self.resource_type, interaction="search")
            except FhirUnauthorized:
                raise
            except (FhirError, OutboundError) as exc:
                if self.pages == 0:
                    raise
                self.incomplete = f"page {self.pages + 1} could not be read ({_short_reason(exc)})"
                return None
        self.pages += 1
        if bundle.get("resourceType") != "Bundle":
            if self.pages == 1:
                raise FhirBadContent(self.resource_type, "search", "wrong-resource-type",
                                     found=str(bundle.get("resourceType"))[:64], outcome=outcome_text(bundle))
            self.incomplete = f"page {self.pages} was not a Bundle"
            return None
        return bundle

    def __iter__(self) -> Iterator[dict]:
        seen_ids: set[str] = set()
        visited: set[str] = set()
        url = self._url
        while True:
            visited.add(url)
            bundle = self._page(url)
            if bundle is None:
                return
            if self.pages == 1:
                total = bundle.get("total")
                self.total = total if isinstance(total, int) and not isinstance(total, bool) and total >= 0 else None
            yield from self._matches(bundle, seen_ids)
            next_url = _next_link(bundle)
            del bundle
            if next_url is None:
                return
            next_url = urljoin(url, next_url)
            if not same_origin(next_url, self._client.fhir_base_url):
                self.incomplete = "the next page is on another server; the app does not send its token there"
                return
            if next_url in visited:
                self.incomplete = "the server repeated a page link; paging was stopped"
                return
            if self.pages >= self._max_pages:
                self.incomplete = f"the app stops after {self._max_pages} pages"
                return
            if self._deadline is not None and time.monotonic() >= self._deadline:
                self.incomplete = f"the EHR was too slow; the app stopped after {self.pages} pages"
                return
            url = next_url

    def _matches(self, bundle: dict, seen_ids: set[str]) -> Iterator[dict]:
        entries = bundle.get("entry")
        for entry in entries if isinstance(entries, list) else ():
            resource = entry.get("resource") if isinstance(entry, dict) else None
            if not isinstance(resource, dict):
                continue
            search = entry.get("search")
            mode = search.get("mode") if isinstance(search, dict) else None
            kind = resource.get("resourceType")
            if kind == "OperationOutcome":
                text = outcome_text(resource)
                if text:
                    self.warnings.append(text)
            elif self._client.included is not None and (mode == "include" or (mode is None and kind == "Endpoint")):
                self._client.included.add(entry)
            elif kind == self.resource_type and mode in (None, "match"):
                resource_id = resource.get("id")
                if isinstance(resource_id, str):
                    if resource_id in seen_ids:
                        continue
                    seen_ids.add(resource_id)
                yield resource


def _next_link(bundle: dict) -> str | None:
    links = bundle.get("link")
    for link in links if isinstance(links, list) else ():
        if isinstance(link, dict) and link.get("relation") == "next":
            url = link.get("url")
            return url if isinstance(url, str) and url else None
    return None


def _short_reason(exc: Exception) -> str:
    """A few words on why a later page failed, for the "list incomplete" notice (no URLs, no PHI)."""
    if isinstance(exc, FhirHttpError):
        return f"HTTP {exc.status}" + (f": {exc.outcome}" if exc.outcome else "")
    if isinstance(exc, FhirRedirect):
        return f"HTTP {exc.status}, a redirect"
    if isinstance(exc, FhirBadContent):
        return {"content-type": f"unexpected content type {exc.media_type}", "invalid-json": "not valid JSON",
                "not-a-resource": "not a FHIR resource"}.get(exc.problem, exc.problem)
    if isinstance(exc, ResponseTooLarge):
        return f"larger than the app accepts ({exc.limit_bytes // (1024 * 1024)} MiB)"
    if isinstance(exc, UpstreamTimeout):
        return "no answer in time"
    return "the server could not be reached" if not isinstance(exc, InvalidJson) else "not valid JSON"

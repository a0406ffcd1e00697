"""FHIR reads and searches for one launch, through fhirclient's ``FHIRServer``, with the launch's bearer token.

fhirclient sets no timeouts and follows nothing but the URL it is given; the
session it is handed here (:class:`_BearerSession`) adds what a clinical app
needs: the pooled :class:`~app.http.OutboundSession` (timeouts, connection
retries), the bearer token only towards the origin of ``iss``, no redirects,
and a JSON content-type check. Errors become :mod:`app.errors` pages, except
``401`` which is raised as :class:`FhirUnauthorized` so the caller can refresh.

Paging follows FHIR R4 §3.1.1.5.6 (Paging) and §3.1.1.4.6: ``next`` links are
resolved against the page URL (RFC 3986 §5), followed only on the origin of
``iss``, at most ``max_pages`` pages, stopping at a repeated link; entries are
studies only with ``search.mode`` ``match`` (or none) and are de-duplicated by id.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from urllib.parse import urljoin

import requests
from authlib.integrations.requests_client import OAuth2Auth
from fhirclient.server import (FHIRNotFoundException, FHIRPermissionDeniedException, FHIRServer,
                               FHIRUnauthorizedException)

from .errors import ImagingScopeNotGranted, UpstreamError
from .http import FHIR_ACCEPT, OutboundSession, is_json_content_type, json_object
from .urls import base_dir, same_origin

log = logging.getLogger(__name__)


class FhirUnauthorized(Exception):
    """The FHIR server answered 401: the access token is expired or revoked."""


class _ForeignOrigin(Exception):
    """A URL outside the origin of ``iss``: the token is not sent there."""


def outcome_text(body: dict | None) -> str:
    """Diagnostics/details text of an OperationOutcome, joined; ``""`` for anything else."""
    if not isinstance(body, dict) or body.get("resourceType") != "OperationOutcome":
        return ""
    texts = []
    for issue in body.get("issue") or ():
        if isinstance(issue, dict):
            text = issue.get("diagnostics") or (issue.get("details") or {}).get("text") or issue.get("code")
            if text:
                texts.append(str(text)[:300])
    return "; ".join(texts)


class _BearerSession:
    """The ``session`` object fhirclient's FHIRServer calls ``.get(url, headers=…)`` on."""

    def __init__(self, session: OutboundSession, access_token: str, fhir_base_url: str):
        self._session = session
        self._auth = OAuth2Auth({"access_token": access_token, "token_type": "Bearer"})
        self._fhir_base_url = fhir_base_url

    def get(self, url: str, headers: dict | None = None, **kwargs) -> requests.Response:
        if not same_origin(url, self._fhir_base_url):
            raise _ForeignOrigin(url)
        headers = {**(headers or {}), "Accept": FHIR_ACCEPT}
        response = self._session.get(url, headers=headers, auth=self._auth, allow_redirects=False, **kwargs)
        if 300 <= response.status_code < 400:
            raise UpstreamError(f"The FHIR server answered HTTP {response.status_code} (a redirect); "
                                "the app does not send its token to redirected locations.")
        if response.status_code < 300 and not is_json_content_type(response.headers.get("Content-Type")):
            media = (response.headers.get("Content-Type") or "none").split(";")[0]
            raise UpstreamError(f"The FHIR server answered with an unexpected content type ({media}) "
                                "instead of FHIR JSON.", title="The EHR's FHIR server sent an unexpected answer")
        return response


@dataclass
class SearchResult:
    """Resources of one search across pages.

    ``incomplete``: why not every page was read (``None`` when complete);
    ``warnings``: OperationOutcome texts found in the Bundles; ``pages``: requests made.
    """

    resources: list[dict] = field(default_factory=list)
    pages: int = 0
    total: int | None = None
    incomplete: str | None = None
    warnings: list[str] = field(default_factory=list)


class FhirClient:
    """Reads and searches one FHIR server (``fhir_base_url``) with one access token."""

    def __init__(self, fhir_base_url: str, access_token: str, session: OutboundSession):
        self.fhir_base_url = fhir_base_url
        self.server = FHIRServer(None, base_uri=base_dir(fhir_base_url))
        self.server.session = _BearerSession(session, access_token, fhir_base_url)

    def absolute(self, path_or_url: str) -> str:
        """A relative path (``"Patient/x"``) resolved against the base; absolute URLs unchanged."""
        return urljoin(self.server.base_uri, path_or_url)

    def get_json(self, path_or_url: str, *, what: str) -> dict:
        """GET a FHIR resource or Bundle as a dict.

        ``what`` names it in error messages ("the imaging study search").
        Raises :class:`FhirUnauthorized` (401), :class:`ImagingScopeNotGranted`
        (403), :class:`UpstreamError` (other HTTP errors, wrong content type,
        unreadable JSON: 502; timeout: 504).
        """
        try:
            body = self.server.request_json(path_or_url)
        except FHIRUnauthorizedException:
            raise FhirUnauthorized() from None
        except FHIRPermissionDeniedException as exc:
            detail = outcome_text(json_object(exc.response))
            raise ImagingScopeNotGranted(
                f"The FHIR server refused {what} (HTTP 403{': ' + detail if detail else ''}).") from None
        except FHIRNotFoundException as exc:
            raise UpstreamError(f"The FHIR server answered HTTP 404 for {what}"
                                f"{_detail(exc.response)}.") from None
        except requests.exceptions.JSONDecodeError:
            raise UpstreamError(f"The FHIR server's answer to {what} was not valid JSON.") from None
        except requests.HTTPError as exc:
            raise UpstreamError(f"The FHIR server answered HTTP {exc.response.status_code} for {what}"
                                f"{_detail(exc.response)}.") from None
        except requests.Timeout:
            raise UpstreamError(f"The FHIR server did not answer {what} in time.",
                                title="The EHR's FHIR server did not answer in time", status=504) from None
        except requests.RequestException as exc:
            raise UpstreamError(f"Could not connect to the FHIR server for {what} ({type(exc).__name__}).",
                                title="The EHR's FHIR server could not be reached") from None
        if not isinstance(body, dict) or not isinstance(body.get("resourceType"), str):
            raise UpstreamError(f"The FHIR server's answer to {what} is not a FHIR resource.")
        return body

    def search(self, resource_type: str, first_path: str, *, max_pages: int, first_page: dict | None = None,
               what: str = "the search") -> SearchResult:
        """Run a search and follow its ``next`` links (see module doc for the rules).

        ``first_page``: an already fetched first Bundle (fetched concurrently by the caller).
        Errors on the first page raise as :meth:`get_json`; a failure on a later
        page ends the search with ``incomplete`` set; 401 on any page raises.
        """
        result = SearchResult()
        seen_ids: set[str] = set()
        visited: set[str] = set()
        url = self.absolute(first_path)
        while True:
            visited.add(url)
            if first_page is not None and result.pages == 0:
                bundle = first_page
            else:
                try:
                    bundle = self.get_json(url, what=what)
                except UpstreamError as exc:
                    if result.pages == 0:
                        raise
                    result.incomplete = f"page {result.pages + 1} could not be read: {exc.detail}"
                    break
                except _ForeignOrigin:
                    result.incomplete = "the next page is on another server; the app does not send its token there"
                    break
            result.pages += 1
            if bundle.get("resourceType") != "Bundle":
                if result.pages == 1:
                    raise UpstreamError(f"The FHIR server answered {what} with a "
                                        f"{bundle.get('resourceType')} instead of a Bundle"
                                        f"{': ' + outcome_text(bundle) if outcome_text(bundle) else ''}.")
                result.incomplete = f"page {result.pages} was not a Bundle"
                break
            if result.pages == 1 and isinstance(bundle.get("total"), int):
                result.total = bundle["total"]
            self._collect(bundle, resource_type, result, seen_ids)
            next_url = next((link.get("url") for link in bundle.get("link") or ()
                             if isinstance(link, dict) and link.get("relation") == "next"), None)
            if not isinstance(next_url, str) or not next_url:
                break
            next_url = urljoin(url, next_url)
            if not same_origin(next_url, self.fhir_base_url):
                result.incomplete = "the next page is on another server; the app does not send its token there"
                break
            if next_url in visited:
                result.incomplete = "the server repeated a page link; paging was stopped"
                break
            if result.pages >= max_pages:
                result.incomplete = f"the app stops after {max_pages} pages"
                break
            url = next_url
        return result

    @staticmethod
    def _collect(bundle: dict, resource_type: str, result: SearchResult, seen_ids: set[str]) -> None:
        for entry in bundle.get("entry") or ():
            resource = entry.get("resource") if isinstance(entry, dict) else None
            if not isinstance(resource, dict):
                continue
            mode = (entry.get("search") or {}).get("mode")
            kind = resource.get("resourceType")
            if kind == "OperationOutcome":
                text = outcome_text(resource)
                if text:
                    result.warnings.append(text)
            elif kind == resource_type and mode in (None, "match"):
                resource_id = resource.get("id")
                if isinstance(resource_id, str):
                    if resource_id in seen_ids:
                        continue
                    seen_ids.add(resource_id)
                result.resources.append(resource)


def _detail(response: requests.Response | None) -> str:
    text = outcome_text(json_object(response))
    return f" ({text})" if text else ""

"""Which credentials a DICOMweb service gets (never the SMART token where it is not meant to go).

The launch's SMART access token is sent to a DICOMweb base only when it is meant for that service:

1. the base is on the origin of ``iss`` (the EHR's own server), or
2. the base is at or under an ``associated_endpoints[].url`` of the server's smart-configuration
   (SMART App Launch 2.2 §Conformance: "endpoints that accept this server's access tokens"), or
3. the base is the registration's ``dicomweb.base_url`` with ``send_smart_token: true``.

Otherwise, when the base is the registration's ``dicomweb.base_url`` and ``basic_auth_env`` names a
variable holding ``user:password``, HTTP basic authentication (RFC 7617; e.g. Orthanc). Otherwise none:
nothing is requested (the list shows a placeholder).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping

from ..config import DicomwebSettings
from ..urls import same_origin

BEARER = "bearer"
BASIC = "basic"


@dataclass(frozen=True)
class Access:
    """``mode``: :data:`BEARER` (the launch's SMART token) or :data:`BASIC` (``basic`` = ``(user, password)``)."""

    mode: str
    basic: tuple[str, str] | None = None

    def __repr__(self) -> str:  # never the password
        return f"Access(mode={self.mode!r})"


def _at_or_under(url: str, prefix: str) -> bool:
    """``url`` equals ``prefix`` or continues it after a ``/`` (no ``/dicomweb-evil`` for ``/dicomweb``)."""
    url, prefix = url.rstrip("/"), prefix.rstrip("/")
    return same_origin(url, prefix) and (url == prefix or url.startswith(prefix + "/"))


def access_for(base_url: str, *, iss: str, associated_endpoints: Iterable[str],
               registered: DicomwebSettings | None, environ: Mapping[str, str] | None = None) -> Access | None:
    """The :class:`Access` for ``base_url`` (rules in the module doc), or ``None``: send nothing."""
    own = registered is not None and _at_or_under(base_url, registered.base_url)
    if same_origin(base_url, iss) or any(_at_or_under(base_url, a) for a in associated_endpoints) or \
            (own and registered.send_smart_token):
        return Access(BEARER)
    if own:
        credentials = registered.basic_credentials(environ)
        if credentials:
            return Access(BASIC, credentials)
    return None

"""Typed launch state kept server-side: :class:`PendingLaunch` (before the callback) and :class:`ActiveLaunch`.

Both serialise explicitly to JSON-able dicts (``to_json`` / ``from_json``) for
the launch store, which encrypts them. They hold secrets (``code_verifier``,
tokens): never log or render them.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Generic, TypeVar

from ..fhir.study_list import StudyList
from ..smart.tokens import TokenGrant


@dataclass(frozen=True)
class PendingLaunch:
    """A launch sent to the EHR's authorize endpoint, waiting for its callback (SMART 2.2 §Obtain authorization code).

    ``iss``: FHIR base as the EHR sent it; ``launch``: the EHR launch id (``None``
    for a standalone launch); ``code_verifier``: PKCE secret (RFC 7636);
    ``scope``: as requested; ``token_endpoint``: where this launch's code must be
    redeemed; ``authorize_url``: the redirect (resumed after the iframe cookie check);
    ``redirect_uri``: where the answer must come back; ``issuer`` /
    ``issuer_required``: the authorization server the browser was sent to, as
    its responses must name it (RFC 9207 §2.4; the mix-up defence of RFC 9700 §4.4).
    """

    iss: str
    launch: str | None
    code_verifier: str
    scope: str
    token_endpoint: str
    authorize_url: str
    redirect_uri: str
    issuer: str | None = None
    issuer_required: bool = False

    def to_json(self) -> dict[str, Any]:
        """JSON-able form."""
        return {"iss": self.iss, "launch": self.launch, "code_verifier": self.code_verifier, "scope": self.scope,
                "token_endpoint": self.token_endpoint, "authorize_url": self.authorize_url,
                "redirect_uri": self.redirect_uri, "issuer": self.issuer, "issuer_required": self.issuer_required}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "PendingLaunch":
        """Inverse of :meth:`to_json`."""
        return cls(iss=data["iss"], launch=data.get("launch"), code_verifier=data["code_verifier"],
                   scope=data["scope"], token_endpoint=data["token_endpoint"], authorize_url=data["authorize_url"],
                   redirect_uri=data["redirect_uri"], issuer=data.get("issuer"),
                   issuer_required=bool(data.get("issuer_required")))


@dataclass(frozen=True)
class ActiveLaunch:
    """A launch after a successful callback: whose data, which tokens, and the cached study list.

    ``patient``: the launch patient's FHIR id; ``grant``: the current tokens;
    ``study_list``: the last list fetched (``None`` before the first page).
    """

    iss: str
    launch: str | None
    patient: str
    grant: TokenGrant
    token_endpoint: str
    study_list: StudyList | None = None

    def with_grant(self, grant: TokenGrant) -> "ActiveLaunch":
        """A copy holding ``grant``."""
        return replace(self, grant=grant)

    def with_study_list(self, study_list: StudyList) -> "ActiveLaunch":
        """A copy holding ``study_list``."""
        return replace(self, study_list=study_list)

    def to_json(self) -> dict[str, Any]:
        """JSON-able form."""
        return {"iss": self.iss, "launch": self.launch, "patient": self.patient, "grant": self.grant.to_json(),
                "token_endpoint": self.token_endpoint,
                "study_list": self.study_list.to_json() if self.study_list else None}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "ActiveLaunch":
        """Inverse of :meth:`to_json`."""
        return cls(iss=data["iss"], launch=data.get("launch"), patient=data["patient"],
                   grant=TokenGrant.from_json(data["grant"]), token_endpoint=data["token_endpoint"],
                   study_list=StudyList.from_json(data["study_list"]) if data.get("study_list") else None)


S = TypeVar("S", PendingLaunch, ActiveLaunch)


@dataclass(frozen=True)
class StoredLaunch(Generic[S]):
    """A launch as the store holds it: ``id`` (opaque, in page URLs), ``version`` (compare-and-swap), ``state``."""

    id: str
    version: int
    expires: float
    state: S

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
    its responses must name it (RFC 9207 §2.4; the mix-up defence of RFC 9700 §4.4);
    ``nonce``: sent on the authorize request when ``openid`` was asked for, the
    id_token must echo it (OIDC Core §3.1.3.7 step 11); ``jwks_uri``: the
    server's id_token keys (discovery), ``None`` to look it up under the issuer.
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
    nonce: str | None = None
    jwks_uri: str | None = None

    def to_json(self) -> dict[str, Any]:
        """JSON-able form."""
        return {"iss": self.iss, "launch": self.launch, "code_verifier": self.code_verifier, "scope": self.scope,
                "token_endpoint": self.token_endpoint, "authorize_url": self.authorize_url,
                "redirect_uri": self.redirect_uri, "issuer": self.issuer, "issuer_required": self.issuer_required,
                "nonce": self.nonce, "jwks_uri": self.jwks_uri}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "PendingLaunch":
        """Inverse of :meth:`to_json`."""
        return cls(iss=data["iss"], launch=data.get("launch"), code_verifier=data["code_verifier"],
                   scope=data["scope"], token_endpoint=data["token_endpoint"], authorize_url=data["authorize_url"],
                   redirect_uri=data["redirect_uri"], issuer=data.get("issuer"),
                   issuer_required=bool(data.get("issuer_required")), nonce=data.get("nonce"),
                   jwks_uri=data.get("jwks_uri"))


@dataclass(frozen=True)
class SignedInUser:
    """The user of a launch, from its validated id_token (OIDC Core §2; SMART 2.2 §fhirUser).

    ``subject``: the id_token's ``sub``; ``fhir_user``: the ``fhirUser`` claim as sent
    (absolute URL or ``Type/id``), ``None`` when absent; ``reference``: ``Type/id``
    when ``fhir_user`` is on this launch's FHIR base (else ``None``);
    ``display_name``: the resource's name when it could be read (e.g. ``Dr. Alex Morgan``).
    """

    subject: str
    fhir_user: str | None = None
    reference: str | None = None
    display_name: str | None = None

    @property
    def label(self) -> str:
        """What the page header shows: the name, else the reference, else the subject."""
        return self.display_name or self.reference or self.fhir_user or self.subject

    def to_json(self) -> dict[str, Any]:
        """JSON-able form."""
        return {"subject": self.subject, "fhir_user": self.fhir_user, "reference": self.reference,
                "display_name": self.display_name}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "SignedInUser":
        """Inverse of :meth:`to_json`."""
        return cls(subject=data["subject"], fhir_user=data.get("fhir_user"), reference=data.get("reference"),
                   display_name=data.get("display_name"))


@dataclass(frozen=True)
class ActiveLaunch:
    """A launch after a successful callback: whose data, which tokens, and the cached study list.

    ``patient``: the launch patient's FHIR id; ``grant``: the current tokens;
    ``study_list``: the last list fetched (``None`` before the first page);
    ``user``: who signed in (``None`` without OpenID Connect). The launch context
    (``encounter``, ``fhirContext``, ``intent``, ``tenant``) is in ``grant``.
    """

    iss: str
    launch: str | None
    patient: str
    grant: TokenGrant
    token_endpoint: str
    study_list: StudyList | None = None
    user: SignedInUser | None = None

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
                "study_list": self.study_list.to_json() if self.study_list else None,
                "user": self.user.to_json() if self.user else None}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "ActiveLaunch":
        """Inverse of :meth:`to_json`."""
        return cls(iss=data["iss"], launch=data.get("launch"), patient=data["patient"],
                   grant=TokenGrant.from_json(data["grant"]), token_endpoint=data["token_endpoint"],
                   study_list=StudyList.from_json(data["study_list"]) if data.get("study_list") else None,
                   user=SignedInUser.from_json(data["user"]) if data.get("user") else None)


S = TypeVar("S", PendingLaunch, ActiveLaunch)


@dataclass(frozen=True)
class StoredLaunch(Generic[S]):
    """A launch as the store holds it: ``id`` (opaque, in page URLs), ``version`` (compare-and-swap), ``state``."""

    id: str
    version: int
    expires: float
    state: S

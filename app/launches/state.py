"""Typed launch state kept server-side: :class:`PendingLaunch` (before the callback) and :class:`ActiveLaunch`.

Both serialise explicitly to JSON-able dicts (``to_json`` / ``from_json``) for
the launch store, which encrypts them. They hold secrets (``code_verifier``,
tokens): never log or render them.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Generic, TypeVar

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
class StudyListRef:
    """Which study list a launch holds: the store keeps the list as its own sealed record, bound to the launch.

    ``version``: random id of this list (22 URL-safe characters; a re-fetched list gets a new one, so a
    per-process cache keyed by launch id and version can never serve an older list); ``fetched_at``: epoch
    seconds of the fetch (the TTL is judged on it without reading the list); ``studies``: how many it holds;
    ``loading``: a background loader was still adding older pages when it was kept (the list must be read to
    know whether that loader is alive, whatever its age).
    """

    version: str
    fetched_at: float
    studies: int = 0
    loading: bool = False

    @classmethod
    def new(cls, study_list: StudyList) -> "StudyListRef":
        """A fresh reference for ``study_list``."""
        return cls(secrets.token_urlsafe(16), study_list.fetched_at, len(study_list.studies),
                   study_list.loading is not None)

    def to_json(self) -> dict[str, Any]:
        """JSON-able form."""
        return {"version": self.version, "fetched_at": self.fetched_at, "studies": self.studies,
                "loading": self.loading}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "StudyListRef":
        """Inverse of :meth:`to_json`."""
        return cls(version=str(data["version"]), fetched_at=float(data["fetched_at"]),
                   studies=int(data.get("studies", 0)), loading=bool(data.get("loading", False)))


@dataclass(frozen=True)
class ActiveLaunch:
    """A launch after a successful callback: whose data, which tokens, and which study list it holds.

    ``patient``: the launch patient's FHIR id; ``grant``: the current tokens;
    ``list_ref``: the last list kept (``None`` before the first), whose studies
    are a separate sealed record of the store (:meth:`~app.launches.store.LaunchStore.get_study_list`);
    ``user``: who signed in (``None`` without OpenID Connect). The launch context
    (``encounter``, ``fhirContext``, ``intent``, ``tenant``) is in ``grant``.
    This record is what every request decrypts: it stays small (about 1 KB) whatever the history.

    ``list_loader``: set by :class:`~app.launches.context.LaunchContext` (never stored) so that
    :attr:`study_list` reads the list when it is first needed.
    """

    iss: str
    launch: str | None
    patient: str
    grant: TokenGrant
    token_endpoint: str
    list_ref: StudyListRef | None = None
    user: SignedInUser | None = None
    list_loader: Callable[[StudyListRef], StudyList | None] | None = field(default=None, compare=False, repr=False)

    @property
    def study_list(self) -> StudyList | None:
        """The launch's kept list (read on first use through ``list_loader``), ``None`` without one or a loader."""
        if self.list_ref is None or self.list_loader is None:
            return None
        return self.list_loader(self.list_ref)

    def with_grant(self, grant: TokenGrant) -> "ActiveLaunch":
        """A copy holding ``grant``."""
        return replace(self, grant=grant)

    def with_list_ref(self, list_ref: StudyListRef | None) -> "ActiveLaunch":
        """A copy naming ``list_ref`` as its list."""
        return replace(self, list_ref=list_ref)

    def with_loader(self, loader: Callable[[StudyListRef], StudyList | None] | None) -> "ActiveLaunch":
        """A copy whose :attr:`study_list` reads through ``loader``."""
        return replace(self, list_loader=loader)

    def to_json(self) -> dict[str, Any]:
        """JSON-able form (the list itself is not in it, only ``list_ref``)."""
        return {"iss": self.iss, "launch": self.launch, "patient": self.patient, "grant": self.grant.to_json(),
                "token_endpoint": self.token_endpoint,
                "list_ref": self.list_ref.to_json() if self.list_ref else None,
                "user": self.user.to_json() if self.user else None}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "ActiveLaunch":
        """Inverse of :meth:`to_json`. A record of an earlier version embedding ``study_list`` is read without
        it (the list is fetched again)."""
        return cls(iss=data["iss"], launch=data.get("launch"), patient=data["patient"],
                   grant=TokenGrant.from_json(data["grant"]), token_endpoint=data["token_endpoint"],
                   list_ref=StudyListRef.from_json(data["list_ref"]) if data.get("list_ref") else None,
                   user=SignedInUser.from_json(data["user"]) if data.get("user") else None)


S = TypeVar("S", PendingLaunch, ActiveLaunch)


@dataclass(frozen=True)
class StoredLaunch(Generic[S]):
    """A launch as the store holds it: ``id`` (opaque, in page URLs), ``version`` (compare-and-swap), ``state``."""

    id: str
    version: int
    expires: float
    state: S

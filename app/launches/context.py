"""An active launch as the views use it: its state, its EHR registration, and a usable access token.

SMART App Launch 2.2 §Refresh access token: when the token has expired (or
the FHIR server answers 401) the app renews it once, if a refresh token was
granted, and replaces both tokens; otherwise, or when renewal fails, the
launch's authorization has expired (:class:`AuthorizationExpired`). Never a loop.
Concurrent requests of one launch (tabs, workers, instances) send one refresh
between them: the one holding the store's renewal lease refreshes, the others
wait for its token (``RENEWAL_WAIT_SECONDS``) and use it; the compare-and-swap
reconciles whatever remains.
"""

from __future__ import annotations

import logging
import time
from typing import Callable, TypeVar

from ..config import EhrRegistration, Settings
from ..fhir.client import FhirClient
from ..fhir.errors import FhirError, FhirUnauthorized
from ..outbound import OutboundClient, OutboundError
from ..smart.authorization import refresh
from ..smart.errors import SmartError
from ..smart.id_token import Identity
from ..smart.scopes import allows_read, granted
from ..smart.tokens import REFERENCE, TokenGrant
from ..urls import base_dir
from .errors import AuthorizationExpired, RegistrationRemoved
from ..fhir.study_list import StudyList
from . import list_cache
from .state import ActiveLaunch, SignedInUser, StoredLaunch, StudyListRef
from .store import LaunchStore

log = logging.getLogger(__name__)

EXPIRY_MARGIN_SECONDS = 10
EXPIRY_MARGIN_FRACTION = 0.1


def expiry_margin(lifetime_seconds: float | None) -> float:
    """Seconds before ``expires_at`` at which a token is renewed: 10 % of its lifetime, at most 10 s.

    A 6 s token gets 0.6 s (it is used, not renewed at once); a 3600 s token 10 s; an unknown
    lifetime 10 s. A 401 answer stays the safety net (:meth:`LaunchContext.with_token`).
    """
    if lifetime_seconds is None:
        return EXPIRY_MARGIN_SECONDS
    return min(EXPIRY_MARGIN_SECONDS, max(0.0, lifetime_seconds) * EXPIRY_MARGIN_FRACTION)


RENEWAL_LEASE_SECONDS = 20.0  # longer than a token request may take (15 s deadline)
RENEWAL_WAIT_SECONDS = 20.0  # how long a request waits for another one's renewal
RENEWAL_POLL_SECONDS = 0.05

T = TypeVar("T")

USER_TYPES = ("Practitioner", "Patient", "RelatedPerson", "Person")  # SMART 2.2 §fhirUser
MAX_NAME_LENGTH = 200


def fhir_user_reference(iss: str, fhir_user: str | None) -> str | None:
    """``Type/id`` of a ``fhirUser`` on this launch's FHIR base (relative, or absolute under ``iss``), else ``None``.

    ``Type`` must be one of :data:`USER_TYPES`. A user on another server is kept as sent but not read.
    """
    if not fhir_user:
        return None
    relative = fhir_user[len(base_dir(iss)):] if fhir_user.startswith(base_dir(iss)) else fhir_user
    match = REFERENCE.fullmatch(relative)
    return match.group(0) if match and match["type"] in USER_TYPES else None


def _human_name(resource: dict) -> str | None:
    """The display form of a resource's first usable ``name`` (HumanName ``text``, else prefix given family)."""
    names = resource.get("name")
    for name in names if isinstance(names, list) else []:
        if not isinstance(name, dict):
            continue
        text = name.get("text")
        if not (isinstance(text, str) and text.strip()):
            parts = [p for key in ("prefix", "given") for p in (name.get(key) or []) if isinstance(p, str)]
            if isinstance(name.get("family"), str):
                parts.append(name["family"])
            text = " ".join(parts)
        text = " ".join(text.split())[:MAX_NAME_LENGTH]
        if text and text.isprintable():
            return text
    return None


def resolve_user(iss: str, identity: Identity, grant: TokenGrant, outbound: OutboundClient) -> SignedInUser:
    """The launch's :class:`SignedInUser`: ``fhirUser`` kept, its name read when the scope allows it.

    Read only when the reference is on ``iss`` and the grant has ``openid fhirUser``
    or a read scope of the type (SMART 2.2 §Scopes for requesting identity data).
    A failed read leaves the name out (the launch goes on).
    """
    reference = fhir_user_reference(iss, identity.fhir_user)
    name = None
    if reference is not None:
        resource_type, resource_id = reference.split("/", 1)
        if (granted(grant.scope, "fhirUser") and granted(grant.scope, "openid")) or \
                allows_read(grant.scope, resource_type):
            try:
                name = _human_name(FhirClient(iss, grant.access_token, outbound).read(resource_type, resource_id))
            except (FhirError, OutboundError) as exc:
                log.info("the signed-in user's %s could not be read: %s", resource_type, type(exc).__name__)
    return SignedInUser(subject=identity.subject, fhir_user=identity.fhir_user, reference=reference,
                        display_name=name)


def kept_study_list(store: LaunchStore, launch: StoredLaunch[ActiveLaunch]) -> StudyList | None:
    """The list ``launch`` holds (its ``list_ref``): from this process's cache, else the store's list record
    (then cached); ``None`` without one. For readers outside a :class:`LaunchContext` (e.g. an error page)."""
    ref = launch.state.list_ref
    if ref is None:
        return None
    study_list = list_cache.LISTS.get(launch.id, ref.version)
    if study_list is None:
        study_list = store.get_study_list(launch.id, ref)
        if study_list is not None:
            list_cache.LISTS.put(launch.id, ref.version, study_list)
    return study_list


class LaunchContext:
    """One active launch of this browser, for the length of one request (at most one token renewal).

    ``state.study_list`` is read when first used: from this process's cache
    (:mod:`app.launches.list_cache`), else from the store's list record (then cached).
    """

    def __init__(self, launch: StoredLaunch[ActiveLaunch], ehr: EhrRegistration, store: LaunchStore,
                 settings: Settings, outbound: OutboundClient):
        self._store = store
        self._list: tuple[StudyListRef, StudyList | None] | None = None
        self.launch = launch
        self.ehr = ehr
        self.settings = settings
        self.outbound = outbound
        self._renewed = False

    @property
    def launch(self) -> StoredLaunch[ActiveLaunch]:
        """The stored launch as last read or written by this request (its state reads the list lazily)."""
        return self._launch

    @launch.setter
    def launch(self, launch: StoredLaunch[ActiveLaunch]) -> None:
        if launch.state.list_loader is not self._load_list:
            launch = StoredLaunch(launch.id, launch.version, launch.expires, launch.state.with_loader(self._load_list))
        self._launch = launch

    def _load_list(self, ref: StudyListRef) -> StudyList | None:
        """The list ``ref`` names: this request's copy, the process cache, else the store's record (cached)."""
        if self._list is not None and self._list[0] == ref:
            return self._list[1]
        study_list = kept_study_list(self._store, StoredLaunch(self._launch.id, self._launch.version,
                                                               self._launch.expires, self._launch.state.with_list_ref(ref)))
        self._list = (ref, study_list)
        return study_list

    @classmethod
    def load(cls, store: LaunchStore, settings: Settings, outbound: OutboundClient,
             launch_id: str, browser_id: str | None) -> "LaunchContext":
        """The active launch ``launch_id`` of this browser.

        Raises :class:`~app.launches.errors.LaunchNotFound` (unknown, expired,
        another browser's) or :class:`RegistrationRemoved`.
        """
        launch = store.get_active(launch_id, browser_id)
        ehr = settings.find_ehr(launch.state.iss)
        if ehr is None:
            raise RegistrationRemoved()
        return cls(launch, ehr, store, settings, outbound)

    @property
    def id(self) -> str:
        """The launch id (opaque; in this launch's page URLs)."""
        return self.launch.id

    @property
    def state(self) -> ActiveLaunch:
        """The launch's current state."""
        return self.launch.state

    def access_token(self, now: float | None = None) -> str:
        """A usable access token, renewed first when it expires within the margin (:func:`expiry_margin`)."""
        now = time.time() if now is None else now
        grant = self.state.grant
        if grant.expires_at is not None and grant.expires_at <= now + expiry_margin(grant.lifetime_seconds):
            return self.renew_token(grant.access_token)
        return grant.access_token

    def with_token(self, call: Callable[[str], T]) -> T:
        """``call(access_token)``; on :class:`FhirUnauthorized` renew the token once and call again.

        Raises :class:`AuthorizationExpired` when renewal is impossible or the
        renewed token is refused too.
        """
        token = self.access_token()
        try:
            return call(token)
        except FhirUnauthorized:
            token = self.renew_token(token)
        try:
            return call(token)
        except FhirUnauthorized:
            raise AuthorizationExpired("renewed-token-refused") from None

    def _adopt_concurrent_renewal(self, stale_access_token: str) -> str | None:
        """The access token another request (tab, worker) stored meanwhile, adopting its state; else ``None``."""
        fresher = self._store.reload(self.id)
        if fresher is None or fresher.state.grant.access_token == stale_access_token:
            return None
        self.launch = fresher
        return fresher.state.grant.access_token

    def renew_token(self, stale_access_token: str) -> str:
        """Renew the access token because ``stale_access_token`` expired or was refused (401).

        Returns the new access token. Raises :class:`AuthorizationExpired`
        without a refresh token, when the EHR refuses the refresh, or when this
        request already renewed once.
        """
        if self._renewed:
            raise AuthorizationExpired("renewed-token-refused")
        self._renewed = True
        adopted = self._adopt_concurrent_renewal(stale_access_token)
        if adopted:
            return adopted
        grant = self.state.grant
        if not grant.refresh_token:
            raise AuthorizationExpired("no-refresh-token")
        owner, adopted = self._renewal_lease(stale_access_token)
        if adopted:
            return adopted
        try:
            new_grant = refresh(self.ehr, self.state.token_endpoint, previous=self.state.grant,
                                redirect_uri=self.ehr.redirect_uri, outbound=self.outbound)
        except (SmartError, OutboundError) as exc:
            log.info("token refresh refused for a launch: %s", type(exc).__name__)
            adopted = self._adopt_concurrent_renewal(stale_access_token)  # it rotated the refresh token first
            if adopted:
                return adopted
            raise AuthorizationExpired("refresh-refused") from None
        else:
            self._write(lambda state: state.with_grant(new_grant))
        finally:
            if owner:
                self._store.release_renewal(self.id, owner)
        return new_grant.access_token

    def _renewal_lease(self, stale_access_token: str) -> tuple[str | None, str | None]:
        """``(owner, None)``: this request holds the renewal lease; ``(None, token)``: another request renewed
        meanwhile; ``(None, None)``: nobody renewed within ``RENEWAL_WAIT_SECONDS`` (renew without the lease)."""
        deadline = time.monotonic() + RENEWAL_WAIT_SECONDS
        while True:
            owner = self._store.acquire_renewal(self.id, RENEWAL_LEASE_SECONDS)
            adopted = self._adopt_concurrent_renewal(stale_access_token)
            if adopted:
                if owner:
                    self._store.release_renewal(self.id, owner)
                return None, adopted
            if owner or time.monotonic() >= deadline:
                return owner, None
            time.sleep(RENEWAL_POLL_SECONDS)

    def _write(self, change: Callable[[ActiveLaunch], ActiveLaunch]) -> bool:
        """Apply ``change`` to the stored state with compare-and-swap, re-reading once if another request won."""
        stored = self._store.update(self.launch, change(self.state))
        if stored is None:
            latest = self._store.reload(self.id)
            if latest is None:
                return False
            stored = self._store.update(latest, change(latest.state))
            if stored is None:
                return False
        self.launch = stored
        return True

    def keep_study_list(self, study_list: StudyList) -> None:
        """Keep ``study_list`` as the launch's list: the store's list record and the launch's reference to it
        in one compare-and-swap, then this process's cache (skipped when another request changed the launch
        meanwhile)."""
        ref = StudyListRef.new(study_list)
        stored = self._store.keep_list(self.launch, self.state.with_list_ref(ref), study_list)
        if stored is None:
            log.debug("study list cache not written: launch updated concurrently")
            return
        self.launch = stored
        self._list = (ref, study_list)
        list_cache.LISTS.put(stored.id, ref.version, study_list)

"""An active launch as the views use it: its record, its EHR registration, and a fresh access token.

SMART App Launch 2.2 §Refresh access token: when the token has expired (or
the FHIR server answers 401) the app refreshes once, if a refresh token was
granted, and replaces both tokens; otherwise, or when refresh fails, the
clinician sees "session expired, relaunch from the EHR". Never a loop.
Concurrent requests of one launch (tabs, workers) are reconciled with the
store's compare-and-swap: a request that loses the race uses the winner's token.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from .config import EhrRegistration, Settings
from .errors import AppError, LaunchNotFound, SessionExpired
from .http import OutboundSession
from .launch_store import LaunchRecord, LaunchStore
from .smart import TokenGrant, refresh

log = logging.getLogger(__name__)

EXPIRY_LEEWAY_SECONDS = 10


@dataclass
class LaunchContext:
    """One active launch: ``record.data`` holds ``iss``, ``patient``, ``token`` (a TokenGrant dict), ``token_endpoint``."""

    record: LaunchRecord
    ehr: EhrRegistration
    store: LaunchStore
    settings: Settings
    session: OutboundSession
    refreshed: bool = False  # at most one refresh per request: never a loop

    @classmethod
    def load(cls, store: LaunchStore, settings: Settings, session: OutboundSession,
             launch_id: str, browser_id: str | None) -> "LaunchContext":
        """The active launch ``launch_id`` of this browser; raises :class:`LaunchNotFound` otherwise."""
        record = store.get_active(launch_id, browser_id)
        if record is None:
            raise LaunchNotFound()
        ehr = settings.find_ehr(record.data["iss"])
        if ehr is None:  # registration removed since the launch
            raise LaunchNotFound()
        return cls(record, ehr, store, settings, session)

    @property
    def id(self) -> str:
        """The launch id (opaque; in this launch's page URLs)."""
        return self.record.id

    @property
    def iss(self) -> str:
        """The FHIR base URL exactly as the launch gave it."""
        return self.record.data["iss"]

    @property
    def patient_id(self) -> str:
        """The launch patient's FHIR id (always set for an active launch)."""
        return self.record.data["patient"]

    @property
    def grant(self) -> TokenGrant:
        """The current token grant."""
        return TokenGrant(**self.record.data["token"])

    def access_token(self, now: float | None = None) -> str:
        """A usable access token, refreshing first when it has expired (within a 10 s leeway)."""
        now = time.time() if now is None else now
        grant = self.grant
        if grant.expires_at is not None and grant.expires_at <= now + EXPIRY_LEEWAY_SECONDS:
            return self.refresh_after_failure(grant.access_token)
        return grant.access_token

    def _adopt_concurrent_refresh(self, failed_access_token: str) -> str | None:
        """The access token another request (tab, worker) stored meanwhile, adopting its record; else ``None``."""
        fresher = self.store.reload(self.id)
        if fresher is None or fresher.data["token"]["access_token"] == failed_access_token:
            return None
        self.record = fresher
        return self.grant.access_token

    def refresh_after_failure(self, failed_access_token: str) -> str:
        """Refresh once because ``failed_access_token`` expired or was refused (401).

        Returns the new access token. Raises :class:`SessionExpired` without a
        refresh token, when the EHR refuses the refresh, or when this request
        already refreshed once.
        """
        if self.refreshed:
            raise SessionExpired("The FHIR server refused the renewed token.")
        self.refreshed = True
        adopted = self._adopt_concurrent_refresh(failed_access_token)
        if adopted:
            return adopted
        grant = self.grant
        if not grant.refresh_token:
            raise SessionExpired("The access token has expired and the EHR granted no refresh token.")
        try:
            new_grant = refresh(self.ehr, self.record.data["token_endpoint"], refresh_token=grant.refresh_token,
                                redirect_uri=self.settings.redirect_uri, previous=grant, pool=self.session)
        except AppError as exc:
            log.info("token refresh refused for a launch: %s", exc.title)
            adopted = self._adopt_concurrent_refresh(failed_access_token)  # it rotated the refresh token first
            if adopted:
                return adopted
            raise SessionExpired("The EHR did not renew the session.") from None
        self.record.data["token"] = new_grant.to_dict()
        if not self.store.update(self.record):
            latest = self.store.reload(self.id)
            if latest is not None:
                latest.data["token"] = new_grant.to_dict()
                self.record = latest
                self.store.update(self.record)
        return new_grant.access_token

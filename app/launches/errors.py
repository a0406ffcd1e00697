"""Facts about launches held by the app: not found, not this browser's, authorization no longer renewable."""

from __future__ import annotations

from .state import PendingLaunch


class LaunchError(Exception):
    """Base of launch-store and launch-context failures."""


class LaunchNotFound(LaunchError):
    """The launch id is unknown, expired, or belongs to another browser: nothing more is revealed."""


class StateNotRecognised(LaunchError):
    """The callback's ``state`` is missing, unknown, already used or expired (RFC 6749 §10.12)."""


class BrowserMismatch(LaunchError):
    """The launch exists but this browser did not start it (or blocked the cookie); it has been discarded.

    ``pending``: the launch, so that a standalone launch can be offered again.
    """

    def __init__(self, pending: PendingLaunch):
        super().__init__("browser mismatch")
        self.pending = pending


class AuthorizationExpired(LaunchError):
    """The access token expired or was refused and could not be renewed.

    ``reason``: ``"no-refresh-token"``, ``"refresh-refused"``, ``"renewed-token-refused"``.
    """

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class RegistrationRemoved(LaunchError):
    """The launch's ``iss`` is no longer in the app's registration (the app was reconfigured)."""


class TooManyPendingLaunches(LaunchError):
    """This browser, or the whole app, has as many launches waiting for their callback as it accepts.

    ``retry_after``: seconds until one of them expires (HTTP ``Retry-After``, RFC 9110 §10.2.3).
    """

    def __init__(self, retry_after: int):
        super().__init__(retry_after)
        self.retry_after = retry_after


class StoreUnavailable(LaunchError):
    """The launch store cannot be used: ``path`` (the file) and ``problem`` (SQLite's words, no data)."""

    def __init__(self, path: str, problem: str):
        super().__init__(f"{path}: {problem}")
        self.path = path
        self.problem = problem


class EhrBusy(LaunchError):
    """This EHR already has as many list requests in progress here as the app allows (it is answering slowly).

    ``retry_after``: seconds to wait before trying again.
    """

    def __init__(self, retry_after: int):
        super().__init__(retry_after)
        self.retry_after = retry_after

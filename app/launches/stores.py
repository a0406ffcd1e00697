"""Open the launch store named by ``launch_store.url``: SQLite (one host, the default) or Redis (several hosts)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

from ..config import LaunchStoreSettings
from .store import LaunchStore


def open_store(settings: LaunchStoreSettings, secret_key: str, fallback_keys: Sequence[str] = (), *,
               path_override: str | os.PathLike | None = None) -> LaunchStore:
    """The store for ``settings`` keyed by ``secret_key`` (sealing) and ``fallback_keys`` (opening old records).

    ``path_override``: a SQLite file that wins over ``settings`` (tests, ``create_app(store_path=...)``).
    Raises :class:`~app.launches.errors.StoreUnavailable` when the file is not a
    usable SQLite database, or Redis cannot be reached or refuses the password.
    """
    if path_override is not None or settings.scheme == "sqlite":
        from .sqlite_store import SqliteLaunchStore
        path = Path(path_override) if path_override is not None else Path(settings.url.removeprefix("sqlite:///"))
        return SqliteLaunchStore(path, secret_key, fallback_keys=fallback_keys)
    from .redis_store import RedisLaunchStore
    return RedisLaunchStore(settings.url, secret_key, fallback_keys=fallback_keys, password=settings.password,
                            key_prefix=settings.key_prefix)

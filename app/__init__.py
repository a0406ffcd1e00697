"""Imaging SMART on FHIR app: lists the launch patient's ImagingStudy resources and shows them via IHE IID.

Build it with :func:`create_app`; run it with ``python -m app`` (development)
or ``gunicorn 'app:create_app()'`` (production, behind TLS).

Layers (imports only run downward): ``web`` (views, presenter, error pages)
on top; ``launches`` (typed state, store, per-request context); ``smart``
(discovery, authorization), ``fhir`` (client, ImagingStudy, Patient, study
list) and ``display`` (IID requests); at the ground ``config``, ``urls``,
``dicom`` and ``http`` (the one way out).
"""

from __future__ import annotations

import logging
import os
import secrets
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Mapping

from flask import Flask

from .config import PROJECT_ROOT, ConfigError, load_settings, parse_settings
from .outbound import OutboundClient
from .launches.store import LaunchStore
from .smart.discovery import SmartDiscovery

__all__ = ["create_app", "ConfigError"]


def _secret_key(instance_dir: Path) -> str:
    """``$SECRET_KEY``, else a random key kept in ``instance/secret_key`` (development only)."""
    if os.environ.get("SECRET_KEY"):
        return os.environ["SECRET_KEY"]
    path = instance_dir / "secret_key"
    if path.exists():
        return path.read_text(encoding="utf-8").strip()
    instance_dir.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48)
    path.write_text(key, encoding="utf-8")
    path.chmod(0o600)
    logging.getLogger(__name__).warning("SECRET_KEY not set: using a generated key in %s", path)
    return key


def create_app(registration: Mapping[str, Any] | None = None, *, secret_key: str | None = None,
               store_path: str | os.PathLike | None = None) -> Flask:
    """Build the Flask app.

    ``registration``: a ``smart-launch.json`` document as a dict (tests);
    default: the file named by ``$SMART_LAUNCH_CONFIG`` or ``smart-launch.json``.
    ``secret_key`` / ``store_path`` override ``$SECRET_KEY`` / ``$LAUNCH_STORE_PATH``.
    Raises :class:`~app.config.ConfigError` naming the bad key when the registration is invalid.
    """
    from .web import init_app
    from .web.services import Services

    settings = parse_settings(registration, source="registration") if registration is not None \
        else load_settings()
    app = Flask(__name__, template_folder=str(PROJECT_ROOT / "templates"),
                static_folder=str(PROJECT_ROOT / "static"), instance_path=str(PROJECT_ROOT / "instance"))
    app.config["SECRET_KEY"] = secret_key or _secret_key(Path(app.instance_path))
    outbound = OutboundClient(settings.fhir.connect_timeout, settings.fhir.read_timeout)
    store = LaunchStore(store_path or settings.store_path, app.config["SECRET_KEY"])
    store.purge_expired()
    logging.getLogger("fhirclient").setLevel(logging.ERROR)  # its model warnings may quote resource data
    logging.getLogger("urllib3").setLevel(logging.ERROR)  # its retry warnings quote URLs with patient ids
    init_app(app, Services(settings=settings, outbound=outbound, discovery=SmartDiscovery(outbound), store=store,
                           executor=ThreadPoolExecutor(max_workers=8, thread_name_prefix="fhir")))
    return app

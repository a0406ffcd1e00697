"""The app's registration: ``smart-launch.json`` validated against its JSON Schema, plus environment overrides.

Environment variables (deployment):

``SMART_LAUNCH_CONFIG``  path of the registration file (default: ``smart-launch.json`` at the project root)
``SECRET_KEY``           Flask secret key (signs the session cookie, derives the launch-store key)
``LAUNCH_STORE_PATH``    path of the SQLite launch store (overrides ``launch_store.path``)
``<client_secret_env>``  each confidential EHR registration names the variable holding its secret
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import jsonschema
from authlib.common.security import is_secure_transport

from .urls import iss_key, origin_string

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SCHEMA_PATH = Path(__file__).resolve().parent / "smart_launch.schema.json"
DEFAULT_CONFIG_PATH = PROJECT_ROOT / "smart-launch.json"


class ConfigError(Exception):
    """The registration is missing, unreadable or invalid; the message names the key."""


@dataclass(frozen=True)
class EhrRegistration:
    """One trusted EHR: its FHIR base (``iss``) and this app's client registration there."""

    name: str
    iss: str
    client_id: str
    client_secret_env: str | None = None
    scopes: tuple[str, ...] = ()
    frame_ancestors: tuple[str, ...] = ()
    standalone: bool = True

    @property
    def client_secret(self) -> str | None:
        """The confidential client's secret read from its environment variable, or ``None`` (public client)."""
        if not self.client_secret_env:
            return None
        return os.environ.get(self.client_secret_env)


@dataclass(frozen=True)
class ViewerSettings:
    """The institution's IID Image Display (IHE RAD TF-2 4.106) and its request defaults."""

    base_url: str
    viewer_type: str | None = "IHE_BIR"
    diagnostic_quality: bool | None = None
    key_images_only: bool | None = None
    frameable: bool = True


@dataclass(frozen=True)
class FhirSettings:
    """How studies are fetched: page size (``_count``), page cap, study cap, timeouts in seconds, list cache TTL."""

    page_size: int = 200
    max_pages: int = 20
    max_studies: int = 10_000
    connect_timeout: float = 3.05
    read_timeout: float = 20.0
    study_list_ttl_seconds: int = 60

    @property
    def timeout(self) -> tuple[float, float]:
        """``(connect, read)`` timeout tuple for requests."""
        return (self.connect_timeout, self.read_timeout)


@dataclass(frozen=True)
class Settings:
    """Everything ``create_app()`` needs, validated."""

    redirect_uri: str
    ehrs: tuple[EhrRegistration, ...]
    viewer: ViewerSettings
    fhir: FhirSettings = field(default_factory=FhirSettings)
    store_path: Path = PROJECT_ROOT / "instance" / "launches.sqlite3"
    launch_lifetime_seconds: int = 8 * 3600

    def find_ehr(self, iss: str) -> EhrRegistration | None:
        """The registration whose FHIR base equals ``iss`` (scheme, host, port, path), else ``None``.

        No prefix matching: ``https://ehr/fhir-evil`` does not match ``https://ehr/fhir``.
        """
        try:
            key = iss_key(iss)
        except ValueError:
            return None
        for ehr in self.ehrs:
            if iss_key(ehr.iss) == key:
                return ehr
        return None

    @property
    def frame_ancestors(self) -> tuple[str, ...]:
        """Origins allowed to frame the app (CSP ``frame-ancestors``), from every EHR registration."""
        seen: dict[str, None] = {}
        for ehr in self.ehrs:
            for origin in ehr.frame_ancestors or (origin_string(ehr.iss),):
                seen[origin] = None
        return tuple(seen)


def _schema() -> dict[str, Any]:
    return json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))


def _key_path(error: jsonschema.ValidationError) -> str:
    path = ""
    for part in error.absolute_path:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path or "(top level)"


def parse_settings(raw: Mapping[str, Any], *, source: str = "smart-launch.json",
                   environ: Mapping[str, str] | None = None) -> Settings:
    """Validate a registration document and build :class:`Settings`.

    Raises :class:`ConfigError` naming the first offending key, e.g.
    ``smart-launch.json: ehrs[0].iss: 'ftp://x' does not match ...``.
    """
    environ = os.environ if environ is None else environ
    validator = jsonschema.Draft202012Validator(_schema())
    errors = sorted(validator.iter_errors(raw), key=lambda e: list(e.absolute_path))
    if errors:
        first = errors[0]
        raise ConfigError(f"{source}: {_key_path(first)}: {first.message}")

    ehrs = []
    seen: dict[tuple, str] = {}
    for index, entry in enumerate(raw["ehrs"]):
        key = iss_key(entry["iss"])
        if key in seen:
            raise ConfigError(f"{source}: ehrs[{index}].iss: same FHIR base as {seen[key]!r}")
        seen[key] = entry["name"]
        if not is_secure_transport(entry["iss"]):
            raise ConfigError(f"{source}: ehrs[{index}].iss: must be https (plain http only on loopback), "
                              "or tokens would cross the network in clear")
        secret_env = entry.get("client_secret_env")
        if secret_env and not environ.get(secret_env):
            raise ConfigError(
                f"{source}: ehrs[{index}].client_secret_env: environment variable {secret_env} is not set")
        ehrs.append(EhrRegistration(
            name=entry["name"], iss=entry["iss"], client_id=entry["client_id"],
            client_secret_env=secret_env, scopes=tuple(entry.get("scopes", ())),
            frame_ancestors=tuple(entry.get("frame_ancestors", ())),
            standalone=entry.get("standalone", True)))

    viewer_raw = raw["viewer"]
    viewer = ViewerSettings(
        base_url=viewer_raw["base_url"], viewer_type=viewer_raw.get("viewerType", "IHE_BIR"),
        diagnostic_quality=viewer_raw.get("diagnosticQuality"),
        key_images_only=viewer_raw.get("keyImagesOnly"), frameable=viewer_raw.get("frameable", True))
    fhir = FhirSettings(**raw.get("fhir", {}))
    store_raw = raw.get("launch_store", {})
    store_path = Path(environ.get("LAUNCH_STORE_PATH") or store_raw.get("path") or "instance/launches.sqlite3")
    if not store_path.is_absolute():
        store_path = PROJECT_ROOT / store_path
    return Settings(
        redirect_uri=raw["app"]["redirect_uri"],
        ehrs=tuple(ehrs), viewer=viewer, fhir=fhir, store_path=store_path,
        launch_lifetime_seconds=store_raw.get("lifetime_seconds", 8 * 3600))


def load_settings(path: str | os.PathLike | None = None,
                  environ: Mapping[str, str] | None = None) -> Settings:
    """Read and validate the registration file.

    ``path`` defaults to ``$SMART_LAUNCH_CONFIG`` or ``smart-launch.json`` at the project root.
    Raises :class:`ConfigError` when the file is missing, is not JSON, or is invalid.
    """
    environ = os.environ if environ is None else environ
    config_path = Path(path or environ.get("SMART_LAUNCH_CONFIG") or DEFAULT_CONFIG_PATH)
    try:
        raw = json.loads(config_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{config_path}: file not found (set SMART_LAUNCH_CONFIG)") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{config_path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    return parse_settings(raw, source=str(config_path), environ=environ)

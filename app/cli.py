"""The ``imaging-app`` command (console script of the installed package).

``imaging-app check-config``  build the app once as the server would: registration, ``SECRET_KEY`` (and
                              fallbacks), launch store reachable; prints a summary without secrets;
                              exit 0, or 2 with the message naming the bad key.
``imaging-app serve [gunicorn options]``  check the configuration, then replace this process with gunicorn
                              serving ``app:create_app()`` under ``gunicorn.conf.py`` (the package's copy when
                              installed, the checkout's otherwise); further options go to gunicorn
                              (e.g. ``--bind 0.0.0.0:8000 --workers 4``).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from . import ConfigError, create_app
from .config import PROJECT_ROOT


def gunicorn_config_path() -> Path:
    """``gunicorn.conf.py``: the one built into the package (``app/gunicorn.conf.py``), else the checkout's."""
    packaged = Path(__file__).resolve().parent / "gunicorn.conf.py"
    return packaged if packaged.is_file() else PROJECT_ROOT / "gunicorn.conf.py"


def check_config(out=sys.stdout) -> int:
    """Build the app once; print what it will use (no secrets). 0 when usable, 2 on a :class:`ConfigError`."""
    try:
        app = create_app()
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    svc = app.extensions["imaging_app"]
    settings = svc.settings
    print(f"registration: {os.environ.get('SMART_LAUNCH_CONFIG') or PROJECT_ROOT / 'smart-launch.json'}", file=out)
    print(f"EHRs: {', '.join(ehr.name for ehr in settings.ehrs)}", file=out)
    print(f"trusted hosts: {', '.join(settings.trusted_hosts)}", file=out)
    print(f"launch store: {svc.store.describe()}", file=out)
    print(f"SECRET_KEY: {'set' if os.environ.get('SECRET_KEY') else 'NOT SET (a generated development key)'}; "
          f"fallbacks: {len(app.config['SECRET_KEY_FALLBACKS'])}", file=out)
    print("configuration OK", file=out)
    return 0


def serve(gunicorn_args: list[str]) -> int:
    """Check the configuration, then ``exec`` gunicorn (signals and exit status are gunicorn's own)."""
    status = check_config(out=sys.stderr)
    if status:
        return status
    argv = [sys.executable, "-m", "gunicorn", "--config", str(gunicorn_config_path()), *gunicorn_args,
            "app:create_app()"]
    sys.stderr.flush()
    os.execv(sys.executable, argv)
    return 0  # pragma: no cover - execv does not return


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``imaging-app``."""
    parser = argparse.ArgumentParser(prog="imaging-app", description="Imaging SMART on FHIR app")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("check-config", help="validate the configuration and reach the launch store")
    commands.add_parser("serve", help="run under gunicorn (further options are gunicorn's)")
    args, rest = parser.parse_known_args(argv)
    if args.command == "check-config":
        if rest:
            parser.error(f"unrecognized arguments: {' '.join(rest)}")
        return check_config()
    return serve(rest)


if __name__ == "__main__":
    sys.exit(main())

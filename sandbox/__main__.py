"""``python -m sandbox`` — run the sandbox EHR with werkzeug's threaded server.

Flags (each also an env var ``SANDBOX_<KEY>``): ``--host`` (127.0.0.1),
``--port`` (8800), ``--public-base-url``, ``--app-origin``, ``--app-launch-url``,
``--token-lifetime``, ``--latency-ms``, ``--history ID:N`` (repeatable),
``--hide-imagingstudy``.

Access logs carry method, path (never the query string), status and size, so
no launch ids, codes, tokens or patient ids in query strings are logged.
"""

from __future__ import annotations

import argparse
import logging
import os
from urllib.parse import urlsplit

from werkzeug.serving import WSGIRequestHandler, run_simple

from . import create_app
from .config import parse_histories


class RedactingRequestHandler(WSGIRequestHandler):
    """werkzeug request handler: HTTP/1.1 keep-alive (as an EHR's server has), access log without query strings."""

    protocol_version = "HTTP/1.1"

    def log_request(self, code="-", size="-"):
        path = urlsplit(self.path).path
        self.log("info", '"%s %s" %s %s', self.command, path, code, size)


def build_parser() -> argparse.ArgumentParser:
    """Command-line parser (defaults come from the environment when set)."""
    env = os.environ.get
    parser = argparse.ArgumentParser(prog="python -m sandbox", description="Sandbox SMART on FHIR imaging EHR")
    parser.add_argument("--host", default=env("SANDBOX_HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(env("SANDBOX_PORT", "8800")))
    parser.add_argument("--public-base-url", default=env("SANDBOX_PUBLIC_BASE_URL"))
    parser.add_argument("--app-origin", default=env("SANDBOX_APP_ORIGIN"))
    parser.add_argument("--app-launch-url", default=env("SANDBOX_APP_LAUNCH_URL"))
    parser.add_argument("--token-lifetime", type=int, default=None, help="access token lifetime, seconds")
    parser.add_argument("--latency-ms", type=int, default=None, help="delay every response by N ms")
    parser.add_argument("--history", action="append", default=[], metavar="ID:N",
                        help="extra generated patient with N studies (repeatable)")
    parser.add_argument("--hide-imagingstudy", action="store_true", default=None,
                        help="no ImagingStudy in the FHIR API (404; not in metadata): studies via DICOMweb only")
    parser.add_argument("--undeclared-imagingstudy", action="store_true", default=None,
                        help="ImagingStudy left out of the CapabilityStatement (its search answers an empty "
                             "searchset): only /metadata says to use QIDO-RS")
    return parser


def main(argv: list[str] | None = None) -> None:
    """Parse flags, build the app, serve until interrupted."""
    args = build_parser().parse_args(argv)
    overrides: dict = {}
    if args.public_base_url:
        overrides["PUBLIC_BASE_URL"] = args.public_base_url
    if args.app_origin:
        overrides["APP_ORIGIN"] = args.app_origin
    if args.app_launch_url:
        overrides["APP_LAUNCH_URL"] = args.app_launch_url
    if args.token_lifetime is not None:
        overrides["ACCESS_TOKEN_LIFETIME"] = args.token_lifetime
    if args.latency_ms is not None:
        overrides["LATENCY_MS"] = args.latency_ms
    if args.hide_imagingstudy:
        overrides["HIDE_IMAGINGSTUDY"] = True
    if args.undeclared_imagingstudy:
        overrides["UNDECLARED_IMAGINGSTUDY"] = True
    if args.history:
        histories = parse_histories(os.environ.get("SANDBOX_EXTRA_HISTORIES"))
        histories.update(parse_histories(",".join(args.history)))
        overrides["EXTRA_HISTORIES"] = histories
    app = create_app(overrides)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    settings = app.config["SANDBOX"]
    logging.getLogger("sandbox").info(
        "Sandbox EHR on http://%s:%s  (public base %s, FHIR %s/fhir, app launch %s)",
        args.host, args.port, settings["PUBLIC_BASE_URL"], settings["PUBLIC_BASE_URL"], settings["APP_LAUNCH_URL"],
    )
    run_simple(args.host, args.port, app, threaded=True, request_handler=RedactingRequestHandler)


if __name__ == "__main__":
    main()

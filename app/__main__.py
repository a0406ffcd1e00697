"""Development server: ``python -m app [--host 127.0.0.1] [--port 8000]`` (production: gunicorn behind TLS)."""

from __future__ import annotations

import argparse
import logging
import os
import sys

from werkzeug.serving import WSGIRequestHandler

from . import ConfigError, create_app


class QueryFreeRequestHandler(WSGIRequestHandler):
    """Access log lines without query strings: codes, states and patient ids stay out of logs."""

    def log_request(self, code="-", size="-"):  # noqa: D102 - werkzeug API
        path = getattr(self, "path", "") or ""  # unset for a malformed request line
        self.log("info", '"%s %s" %s %s', getattr(self, "command", "-"), path.split("?", 1)[0], code, size)


def main(argv: list[str] | None = None) -> int:
    """Run the app on loopback with Werkzeug's threaded server; exit 2 on a bad registration."""
    parser = argparse.ArgumentParser(prog="python -m app", description=__doc__)
    parser.add_argument("--host", default=os.environ.get("APP_HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("APP_PORT", "8000")))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        app = create_app()
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    app.run(host=args.host, port=args.port, threaded=True, use_reloader=False,
            request_handler=QueryFreeRequestHandler)
    return 0


if __name__ == "__main__":
    sys.exit(main())

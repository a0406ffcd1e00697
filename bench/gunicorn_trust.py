"""gunicorn config for the bench's app processes (``-c bench/gunicorn_trust.py``): trust the run's throwaway CA.

The app's guarded client (``app/outbound``) sends with ``verify=True`` on its
own adapter, so requests verifies against certifi's bundle
(``requests.adapters.DEFAULT_CA_BUNDLE_PATH``) and ignores
``REQUESTS_CA_BUNDLE``/``SSL_CERT_FILE``. Loaded in the arbiter before the
workers fork, this points that default at ``$REQUESTS_CA_BUNDLE`` (the bench's
CA, :mod:`bench.tls`): the equivalent of installing the CA in the machine's
trust store, as a deployment behind a private CA would. No gunicorn setting is
changed; app code is not touched.
"""

import os

import requests.adapters

if os.environ.get("REQUESTS_CA_BUNDLE"):
    requests.adapters.DEFAULT_CA_BUNDLE_PATH = os.environ["REQUESTS_CA_BUNDLE"]

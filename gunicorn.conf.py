"""gunicorn settings of the imaging app (``gunicorn -c gunicorn.conf.py 'app:create_app()'``, or ``imaging-app serve``).

Timeouts follow the app's upstream deadlines (``smart-launch.json`` ``fhir``):
one FHIR request may take ``deadline_seconds`` (30 s), and a list asks for no
new page after ``list_deadline_seconds`` (60 s), so a list request can last
60 + 30 s; a worker is given that plus a margin before it is killed or, on a
restart, before its requests in flight are abandoned. Environment:
``IMAGING_APP_BIND`` (``127.0.0.1:8000``), ``IMAGING_APP_WORKERS`` (2),
``IMAGING_APP_THREADS`` (8), ``FORWARDED_ALLOW_IPS`` (``127.0.0.1``: the TLS proxy
whose ``X-Forwarded-*`` headers are believed).
"""

import os

FHIR_DEADLINE_SECONDS = 30  # fhir.deadline_seconds
LIST_DEADLINE_SECONDS = 60  # fhir.list_deadline_seconds
MARGIN_SECONDS = 10

bind = os.environ.get("IMAGING_APP_BIND", "127.0.0.1:8000").split(",")
workers = int(os.environ.get("IMAGING_APP_WORKERS", "2"))
worker_class = "gthread"  # threads overlap EHR waits (README, Performance)
threads = int(os.environ.get("IMAGING_APP_THREADS", "8"))
timeout = LIST_DEADLINE_SECONDS + FHIR_DEADLINE_SECONDS + MARGIN_SECONDS  # 100 s: a silent worker is restarted
graceful_timeout = timeout  # SIGTERM / HUP: requests in flight may finish their list
keepalive = 5  # seconds an idle client connection is kept (the proxy's idle timeout should be shorter)
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
proxy_allow_ips = forwarded_allow_ips
accesslog = "-"
errorlog = "-"
# the path only (%(U)s), never the request line (%(r)s) or query (%(q)s): codes, states and patient ids stay out
access_log_format = '%(h)s - %(t)s "%(m)s %(U)s %(H)s" %(s)s %(B)s %(M)sms'
limit_request_line = 8190
limit_request_fields = 100

# gunicorn 25.1+ opens a control socket in ~/.gunicorn shared by every gunicorn of the user; the app does not use it
control_socket_disable = True

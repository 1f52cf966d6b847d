"""Gunicorn settings for the EmoLens REST API:  gunicorn -c deploy/gunicorn.conf.py core.api:app

Why these values:
- gthread workers: each process has several threads, and `core.api` lets at most EMOLENS_API_HEAVY_SLOTS
  of them analyse images at once, so /healthz and light requests always find a free thread while heavy
  batches run (sync workers were fully blocked by two large batches).
- 127.0.0.1 by default: put a reverse proxy (TLS, request buffering against slow-trickle clients) in front;
  EMOLENS_API_BIND changes it.
- request timeout / graceful timeout: a stuck worker is restarted; a deploy lets running requests finish.
- limit_request_*: small request line and headers (uploads travel in the body, which the app caps).
- backlog: a bounded accept queue, so overload shows up as refused connections, not unbounded waiting.
Command-line flags override any value here (the load test passes its own --bind).
"""
from core import settings

_s = settings.get()  # a malformed EMOLENS_* value stops here with a plain message

bind = [_s.api_bind]
workers = _s.api_workers
worker_class = "gthread"
threads = _s.api_threads
backlog = 64
timeout = 120
graceful_timeout = 30
keepalive = 5
limit_request_line = 4094
limit_request_fields = 50
limit_request_field_size = 8190
preload_app = True          # import torch & co once in the master; workers fork ready
control_socket_disable = True  # gunicorn 25+: no control socket file in $HOME
max_requests = 2000         # recycle workers now and then (native libraries can fragment memory)
max_requests_jitter = 200

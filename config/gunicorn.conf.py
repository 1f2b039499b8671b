"""gunicorn settings; every value can be set from the environment.

The defaults are for a 2-core machine and were chosen with the benchmark (bench/README.md; the
runs behind them are in bench/RESULTS.md):
- gthread workers: they keep HTTP connections alive, where sync workers pay a TCP accept per
  request (with 4 sync workers the bare view ran at 40 % of the gthread rate).
- 2 workers x 8 threads: a request spends much of its time waiting for PostgreSQL and Redis,
  and 8 threads per worker keep both cores busy through those waits (the cached learner read
  ran ~45 % faster than with 4 threads, other endpoints the same; 4 workers x 4 threads did
  no better with twice the processes). Each thread may keep a database connection open
  (CONN_MAX_AGE): up to 16 per server.
- glibc's mmap threshold fixed at 128 KiB (GUNICORN_MALLOC_MMAP_THRESHOLD, 0 = glibc's
  default): glibc raises the threshold after the first large free, so the buffers of large
  responses (a course page is ~840 KB of JSON) then stay in the heap of every thread's arena;
  fixed, they go back to the system when freed (worker RSS after load ~130 MB instead of ~165).
"""

import ctypes
import ctypes.util
import os

bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("GUNICORN_WORKERS", "2"))
threads = int(os.environ.get("GUNICORN_THREADS", "8"))
worker_class = "gthread" if threads > 1 else "sync"
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", "30"))
keepalive = int(os.environ.get("GUNICORN_KEEPALIVE", "5"))
max_requests = int(os.environ.get("GUNICORN_MAX_REQUESTS", "0"))
max_requests_jitter = int(os.environ.get("GUNICORN_MAX_REQUESTS_JITTER", "0"))
wsgi_app = "config.wsgi:application"
# The proxies whose X-Forwarded-* headers are believed: the same TRUSTED_PROXIES the app's
# throttles read (config/settings.py), so gunicorn and Django agree; none by default (gunicorn's
# own default would trust 127.0.0.1 and ::1).
forwarded_allow_ips = os.environ.get("TRUSTED_PROXIES", "")
accesslog = os.environ.get("GUNICORN_ACCESSLOG", "-")
errorlog = "-"
loglevel = os.environ.get("GUNICORN_LOGLEVEL", "info")
# gunicorn 27's control socket lives at one path per user ($HOME/.gunicorn/gunicorn.ctl), shared
# by every gunicorn on the machine; nothing here uses it.
control_socket_disable = True

malloc_mmap_threshold = int(os.environ.get("GUNICORN_MALLOC_MMAP_THRESHOLD", str(128 * 1024)))
M_MMAP_THRESHOLD = -3  # glibc's malloc.h


def post_fork(server, worker):
    """In each worker, before its threads start: fix glibc's mmap threshold (see above)."""
    if malloc_mmap_threshold <= 0:
        return
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt  # glibc only; musl and others have no such call
    except (OSError, TypeError, AttributeError):
        return
    if not mallopt(M_MMAP_THRESHOLD, malloc_mmap_threshold):
        server.log.warning("mallopt(M_MMAP_THRESHOLD) was refused")

"""The container's health probe: exit 0 when this instance's /healthz answers 200.

Docker's HEALTHCHECK runs it inside the container. It asks the port gunicorn listens on
(GUNICORN_BIND), over plain HTTP by address: /healthz answers that whatever ALLOWED_HOSTS and
SECURE_SSL_REDIRECT say (courseprogress.middleware.HealthCheckMiddleware).
"""

import os
import sys
import urllib.error
import urllib.request


def main() -> int:
    port = os.environ.get("GUNICORN_BIND", "0.0.0.0:8000").rsplit(":", 1)[-1]
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=4) as response:
            return 0 if response.status == 200 else 1
    except (OSError, urllib.error.URLError) as exc:
        print(f"healthcheck: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())

"""config.wsgi plus the code-level changes named in BENCH_VARIANT (experiments only)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

application = get_wsgi_application()

from bench.variants import apply_code_changes  # noqa: E402

apply_code_changes()

"""Logging helpers."""

import logging
import threading
import time


class QuietCacheErrors(logging.Filter):
    """Cache errors as one WARNING line each, at most one per second per process.

    django-redis logs every ignored error with its traceback; with Redis away that is hundreds
    of identical tracebacks a second, which hide everything else in the log. What remains says
    what failed, how often, and that requests are served from the database meanwhile.
    """

    interval = 1.0

    def __init__(self, name=""):
        super().__init__(name)
        self.lock = threading.Lock()
        self.last = 0.0
        self.suppressed = 0

    def filter(self, record):
        if not record.exc_info:
            return True
        with self.lock:
            now = time.monotonic()
            if now - self.last < self.interval:
                self.suppressed += 1
                return False
            suppressed, self.suppressed, self.last = self.suppressed, 0, now
        error = record.exc_info[1]
        record.msg = "Cache unavailable, serving from the database: %s: %s%s"
        record.args = (
            type(error).__name__,
            error,
            f" ({suppressed} more in the last second)" if suppressed else "",
        )
        record.exc_info = record.exc_text = None
        record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True

import signal
import threading

from django.db import DatabaseError, close_old_connections, connection

from progress import webhooks
from progress.management.base import BatchCommand

logger = webhooks.logger
RETRY_AFTER = 5  # seconds, after a database error


class Command(BatchCommand):
    help = f"""\
Deliver webhooks: turn new change events into deliveries, POST them, retry the failures.

Runs until SIGTERM or SIGINT; a signal lets the attempt in flight finish, then it exits. With
--once it delivers everything due now and exits (cron, tests). One log line per attempt.

Any number of workers share the work on PostgreSQL (SELECT ... FOR UPDATE SKIP LOCKED); run
one on SQLite. A worker killed mid-attempt leaves a lease of WEBHOOK_LEASE_SECONDS: then
the attempt is made again (at least once). Failed attempts are retried after
{", ".join(str(d) for d in webhooks.BACKOFF)} (each +-{webhooks.JITTER:.0%}), then the delivery is
marked failed; the admin lists failed deliveries and sends them again.

Examples:
  manage.py deliver_webhooks
  manage.py deliver_webhooks --once
"""
    writes = False
    default_batch_size = 10
    batch_help = "Deliveries claimed at a time by this worker. Default: %(default)s."

    def add_arguments(self, parser):
        parser.add_argument(
            "--once", action="store_true", help="Deliver what is due now, then exit."
        )
        parser.add_argument(
            "--interval",
            type=float,
            default=1.0,
            help="Seconds to wait when nothing is due. Default: %(default)s.",
        )
        super().add_arguments(parser)

    def handle(self, *args, **options):
        stop = threading.Event()
        previous = {}
        for signum in (signal.SIGTERM, signal.SIGINT):
            previous[signum] = signal.signal(signum, lambda *_: stop.set())
        tally = webhooks.Tally()
        progress = self.progress(options, "deliver_webhooks", unit="attempts")
        try:
            while not stop.is_set():
                try:
                    made = webhooks.deliver_round(
                        tally=tally,
                        claim_size=options["batch_size"],
                        should_stop=stop.is_set,
                        on_attempt=lambda _: progress.advance(),
                    )
                except DatabaseError as exc:
                    if options["once"]:
                        raise
                    # A long-running worker outlives a database restart: wait, then go on
                    # (a lease it could not record runs out, and the attempt is made again).
                    logger.warning("Database unavailable, retrying in %s s: %s", RETRY_AFTER, exc)
                    connection.close()
                    stop.wait(RETRY_AFTER)
                    continue
                if options["once"]:
                    break
                close_old_connections()  # a long-running worker: like a request's end
                if not made:
                    stop.wait(options["interval"])
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
        progress.finish()
        if options["verbosity"] >= 1:
            self.stdout.write(tally.line())

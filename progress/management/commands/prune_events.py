from django.conf import settings

from progress import events
from progress.management.base import BatchCommand, Summary


class Command(BatchCommand):
    help = """\
Delete change events older than EVENT_RETENTION_DAYS (default 30), oldest first.

Events go in sequence order up to the first one that is still young enough, so the feed can
tell a consumer exactly when its cursor has become too old: a cursor before the last event
deleted is answered with 410 ("start again without `after`"). Delivered and failed webhook
deliveries older than the retention are deleted too. Run it daily (cron, a systemd timer);
a second run finds nothing to do.

Examples:
  manage.py prune_events --dry-run
  EVENT_RETENTION_DAYS=7 manage.py prune_events
"""
    default_batch_size = 10_000
    batch_help = "Events per batch; each batch is one transaction. Default: %(default)s."

    def handle(self, *args, **options):
        deleted = events.prune_events(batch_size=options["batch_size"], dry_run=options["dry_run"])
        if options["verbosity"] >= 2 or options["dry_run"]:
            verb = "would delete" if options["dry_run"] else "deleted"
            self.stdout.write(
                f"{verb} {deleted} events older than {settings.EVENT_RETENTION_DAYS} days"
            )
        self.finish(Summary(read=deleted, changed=deleted), options)

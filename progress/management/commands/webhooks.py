import json

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.db.models import Count, Q

from progress import webhooks
from progress.event_models import DeliveryState, EventType, WebhookSubscription
from progress.formatting import iso
from progress.management.base import HelpFormatter


class Command(BaseCommand):
    help = f"""\
Manage webhook subscriptions (superusers can do the same in the admin).

  webhooks add --url URL [--events TYPE,...] [--course ID] [--secret whsec_...]
      Subscribe URL to the change events (all types unless --events; every course unless
      --course). Prints {{"id": ..., "secret": "whsec_..."}} as one JSON line; a secret is
      generated when none is given. The subscription receives the events recorded from now
      on. Only http(s) URLs; a literal loopback, private or link-local address is refused
      (exit 1) unless WEBHOOK_ALLOW_PRIVATE_NETWORKS=1. Event types: {", ".join(EventType.values)}.
  webhooks list
      One JSON line per subscription (no secrets): URL, events, course, active, last success
      and failure, failures in a row, deliveries pending and failed.
  webhooks disable ID / webhooks enable ID
      Pause (or resume) a subscription: while it is disabled nothing is sent to it; enabled
      again, it catches up on the events recorded meanwhile (those still kept).

`manage.py deliver_webhooks` sends the deliveries.
"""

    def create_parser(self, prog_name, subcommand, **kwargs):
        kwargs.setdefault("formatter_class", HelpFormatter)
        return super().create_parser(prog_name, subcommand, **kwargs)

    def add_arguments(self, parser):
        actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
        add = actions.add_parser("add", help="Subscribe a URL.")
        add.add_argument("--url", required=True)
        add.add_argument("--events", default="", help="Comma-separated event types.")
        add.add_argument("--course", type=int, metavar="ID")
        add.add_argument("--secret", help="whsec_ + base64 of 24-64 bytes; generated if absent.")
        add.add_argument("--description", default="")
        actions.add_parser("list", help="List the subscriptions.")
        for name in ("disable", "enable"):
            sub = actions.add_parser(name, help=f"{name.capitalize()} a subscription.")
            sub.add_argument("id", type=int)

    def handle(self, *args, **options):
        getattr(self, f"_{options['action']}")(options)

    def _add(self, options):
        types = [kind.strip() for kind in options["events"].split(",") if kind.strip()]
        try:
            subscription = webhooks.create_subscription(
                url=options["url"],
                event_types=types,
                course_id=options["course"],
                secret=options["secret"],
                description=options["description"],
            )
        except ValidationError as exc:
            problems = "; ".join(f"{k}: {' '.join(v)}" for k, v in exc.message_dict.items())
            raise CommandError(f"Not subscribed: {problems}") from None
        self.stdout.write(json.dumps({"id": subscription.pk, "secret": subscription.secret}))

    def _list(self, options):
        subscriptions = WebhookSubscription.objects.annotate(
            pending=Count("deliveries", filter=Q(deliveries__state=DeliveryState.PENDING)),
            failed=Count("deliveries", filter=Q(deliveries__state=DeliveryState.FAILED)),
        ).order_by("pk")
        for s in subscriptions:
            self.stdout.write(
                json.dumps(
                    {
                        "id": s.pk,
                        "url": s.url,
                        "events": s.event_types or "all",
                        "course": s.course_id,
                        "active": s.is_active,
                        "lastSuccessAt": iso(s.last_success_at),
                        "lastFailureAt": iso(s.last_failure_at),
                        "consecutiveFailures": s.consecutive_failures,
                        "pending": s.pending,
                        "failed": s.failed,
                    }
                )
            )

    def _disable(self, options):
        self._set_active(options["id"], False)

    def _enable(self, options):
        self._set_active(options["id"], True)

    def _set_active(self, pk: int, active: bool):
        if not webhooks.set_active(pk, active):
            raise CommandError(f"Subscription {pk} does not exist.")
        self.stdout.write(f"Subscription {pk} {'enabled' if active else 'disabled'}.")

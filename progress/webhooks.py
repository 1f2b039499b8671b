"""Webhook subscriptions and deliveries (contract section 6). The `webhooks` and
`deliver_webhooks` commands and the admin call these.

The worker's round (deliver_round):
1. fan out: for each active subscription, read the feed past its cursor (progress.events, so
   a delivery is made for every event exactly once and in order) and create one delivery row
   per event, then move the cursor, in one transaction;
2. claim due deliveries: pending, due, not leased by another worker, and with no earlier
   pending delivery of the same (subscription, learner, course): `SELECT ... FOR UPDATE SKIP
   LOCKED` on PostgreSQL, so any number of workers share the work, and a lease
   (WEBHOOK_LEASE_SECONDS) recorded in the same transaction: a worker killed mid-attempt leaves
   the lease to run out, and the attempt is made again (at least once);
3. attempt each one outside any transaction, then record the outcome, only if the lease is
   still this worker's.

Ordering: a delivery is not due while an earlier one of the same learner and course is pending
for the same subscription (waiting for its retry included), so a receiver gets a learner's
IN_PROGRESS, COMPLETED and CERTIFIED in that order even when the first attempt failed. A
delivery that has failed for good (retries exhausted) no longer holds the later ones back; sent
again from the admin, it is pending again and holds back the ones after it that are still
pending, but it arrives after any that were delivered meanwhile (receivers can tell by
`sequence`).
"""

import base64
import binascii
import logging
import random
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Exists, F, OuterRef, Q
from django.utils import timezone
from standardwebhooks import Webhook

from courseprogress.models import Course
from courseprogress.renderers import dumps
from progress import events, webhook_http
from progress.event_models import (
    DeliveryState,
    EventType,
    WebhookDelivery,
    WebhookSubscription,
    event_id,
)

logger = logging.getLogger("courseprogress.webhooks")

# Delay after each failed attempt: the 1st failure waits 5 s, ..., the 7th 14 h; the 8th
# attempt failing marks the delivery failed, about 32 hours after the first. Each delay is
# spread by +-JITTER so that deliveries that failed together do not all come back at once.
BACKOFF = (
    timedelta(seconds=5),
    timedelta(minutes=5),
    timedelta(minutes=30),
    timedelta(hours=2),
    timedelta(hours=5),
    timedelta(hours=10),
    timedelta(hours=14),
)
MAX_ATTEMPTS = len(BACKOFF) + 1
JITTER = 0.2
SECRET_PREFIX = "whsec_"
USER_AGENT = "courseprogress-webhooks/1.0"


# --- subscriptions --------------------------------------------------------------------------


def generate_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def secret_problem(secret: str) -> str | None:
    if not secret.startswith(SECRET_PREFIX):
        return f"The secret must start with {SECRET_PREFIX}."
    try:
        key = base64.b64decode(secret[len(SECRET_PREFIX) :], validate=True)
    except (binascii.Error, ValueError):
        return f"After {SECRET_PREFIX}, the secret must be base64."
    if not 24 <= len(key) <= 64:
        return "The secret's key must be 24 to 64 bytes (32 random bytes is usual)."
    return None


def url_problem(url: str) -> str | None:
    return webhook_http.url_problem(url, allow_private=settings.WEBHOOK_ALLOW_PRIVATE_NETWORKS)


def types_problem(event_types) -> str | None:
    unknown = [kind for kind in event_types if kind not in EventType.values]
    if unknown:
        return f"Unknown event types: {', '.join(unknown)}; known: {', '.join(EventType.values)}."
    return None


def create_subscription(
    *,
    url: str,
    event_types=(),
    course_id: int | None = None,
    secret: str | None = None,
    description: str = "",
) -> WebhookSubscription:
    """A new subscription; it receives the events recorded after it is made."""
    errors = {}
    if problem := url_problem(url):
        errors["url"] = [problem]
    if problem := types_problem(event_types):
        errors["event_types"] = [problem]
    if secret and (problem := secret_problem(secret)):
        errors["secret"] = [problem]
    if course_id is not None and not Course.objects.filter(pk=course_id).exists():
        errors["course"] = [f"Course {course_id} does not exist."]
    if errors:
        raise ValidationError(errors)
    return WebhookSubscription.objects.create(
        url=url,
        event_types=sorted(set(event_types)),
        course_id=course_id,
        secret=secret or generate_secret(),
        description=description,
        cursor=events.last_sequence(),
    )


def set_active(subscription_id: int, active: bool) -> bool:
    return bool(WebhookSubscription.objects.filter(pk=subscription_id).update(is_active=active))


def resend(deliveries) -> int:
    """Send deliveries again (the admin's action): pending, due now, the retry schedule anew."""
    return deliveries.exclude(state=DeliveryState.PENDING, leased_until__gt=timezone.now()).update(
        state=DeliveryState.PENDING,
        attempts=0,
        next_attempt_at=timezone.now(),
        leased_until=None,
        lease_token="",
    )


# --- fan-out --------------------------------------------------------------------------------


def event_body(event: dict) -> str:
    """The event's JSON, as the feed serves it."""
    return dumps(event).decode()


def fan_out(*, batch_size: int = 1000) -> int:
    """Deliveries for the events past each active subscription's cursor; how many were made."""
    made = 0
    for subscription_id in WebhookSubscription.objects.filter(is_active=True).values_list(
        "pk", flat=True
    ):
        while True:
            created, more = _fan_out_one(subscription_id, batch_size)
            made += created
            if not more:
                break
    return made


def _fan_out_one(subscription_id: int, batch_size: int) -> tuple[int, bool]:
    with transaction.atomic():
        subscription = (
            WebhookSubscription.objects.select_for_update(skip_locked=True)
            .filter(pk=subscription_id, is_active=True)
            .first()
        )
        if subscription is None:  # disabled, or another worker is on it
            return 0, False
        scope = Q(course_id=subscription.course_id) if subscription.course_id else None
        try:
            page = events.read_events(
                after=subscription.cursor,
                scope=scope,
                types=subscription.event_types,
                limit=batch_size,
            )
        except events.CursorGone:
            lost_through = events.pruned_through()
            logger.warning(
                "Subscription %s was behind the events kept; events up to %s were pruned "
                "before they could be delivered",
                subscription.pk,
                lost_through,
            )
            subscription.cursor = lost_through
            subscription.save(update_fields=["cursor"])
            return 0, True
        now = timezone.now()
        WebhookDelivery.objects.bulk_create(
            [
                WebhookDelivery(
                    subscription=subscription,
                    sequence=event["sequence"],
                    event_type=event["type"],
                    course_id=event["courseId"],
                    user_id=event["userId"],
                    body=event_body(event),
                    next_attempt_at=now,
                )
                for event in page.events
            ],
            ignore_conflicts=True,
        )
        if page.next != subscription.cursor:
            subscription.cursor = page.next
            subscription.save(update_fields=["cursor"])
        return len(page.events), page.has_more


# --- claiming and attempting ----------------------------------------------------------------


def claim(*, limit: int = 10) -> list[WebhookDelivery]:
    """Lease up to `limit` due deliveries to this worker (see the module's doc)."""
    now = timezone.now()
    token = secrets.token_hex(16)
    earlier_pending = WebhookDelivery.objects.filter(
        subscription_id=OuterRef("subscription_id"),
        user_id=OuterRef("user_id"),
        course_id=OuterRef("course_id"),
        sequence__lt=OuterRef("sequence"),
        state=DeliveryState.PENDING,
    )
    with transaction.atomic():
        due = (
            WebhookDelivery.objects.filter(
                state=DeliveryState.PENDING,
                next_attempt_at__lte=now,
                subscription__is_active=True,
            )
            .filter(Q(leased_until__isnull=True) | Q(leased_until__lt=now))
            .exclude(Exists(earlier_pending))
            .order_by("next_attempt_at", "sequence")
            .select_for_update(skip_locked=True, of=("self",))
        )
        ids = list(due.values_list("pk", flat=True)[:limit])
        if not ids:
            return []
        WebhookDelivery.objects.filter(pk__in=ids).update(
            leased_until=now + timedelta(seconds=settings.WEBHOOK_LEASE_SECONDS),
            lease_token=token,
            attempts=F("attempts") + 1,
            last_attempt_at=now,
        )
    return list(
        WebhookDelivery.objects.filter(pk__in=ids, lease_token=token)
        .select_related("subscription")
        .order_by("sequence")
    )


def release(deliveries: list[WebhookDelivery]) -> None:
    """Give back leases not attempted (a worker told to stop): due again for anyone at once."""
    for delivery in deliveries:
        WebhookDelivery.objects.filter(
            pk=delivery.pk, lease_token=delivery.lease_token, state=DeliveryState.PENDING
        ).update(leased_until=None, lease_token="", attempts=F("attempts") - 1)


def signed_headers(delivery: WebhookDelivery, *, at: datetime | None = None) -> dict:
    """The Standard Webhooks headers: webhook-id, webhook-timestamp, webhook-signature."""
    moment = (at or datetime.now(UTC)).replace(microsecond=0)
    message_id = event_id(delivery.sequence)
    signature = Webhook(delivery.subscription.secret).sign(message_id, moment, delivery.body)
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(int(moment.timestamp())),
        "webhook-signature": signature,
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
    }


@dataclass
class Outcome:
    delivery: WebhookDelivery
    result: webhook_http.Result
    state: str
    retry_at: datetime | None = None
    recorded: bool = True


def attempt(delivery: WebhookDelivery) -> Outcome:
    """POST one leased delivery and record what happened."""
    result = webhook_http.post(
        delivery.subscription.url,
        delivery.body.encode(),
        signed_headers(delivery),
        timeout=settings.WEBHOOK_TIMEOUT,
        allow_private=settings.WEBHOOK_ALLOW_PRIVATE_NETWORKS,
    )
    outcome = record(delivery, result)
    _log(outcome)
    return outcome


def backoff(attempts: int) -> timedelta:
    """The wait after the `attempts`-th failed attempt, with jitter."""
    delay = BACKOFF[min(attempts, len(BACKOFF)) - 1]
    return delay * random.uniform(1 - JITTER, 1 + JITTER)  # jitter, not a secret


def record(delivery: WebhookDelivery, result: webhook_http.Result) -> Outcome:
    now = timezone.now()
    mine = WebhookDelivery.objects.filter(
        pk=delivery.pk, lease_token=delivery.lease_token, state=DeliveryState.PENDING
    )
    common = {
        "leased_until": None,
        "lease_token": "",
        "last_status_code": result.status,
        "last_error": result.error + (f": {result.body_excerpt}" if result.error else ""),
    }
    subscription = WebhookSubscription.objects.filter(pk=delivery.subscription_id)
    with transaction.atomic():
        if result.ok:
            state, retry_at = DeliveryState.DELIVERED, None
            recorded = mine.update(state=state, delivered_at=now, **common)
            if recorded:
                subscription.update(last_success_at=now, consecutive_failures=0)
        else:
            if delivery.attempts >= MAX_ATTEMPTS:
                state, retry_at = DeliveryState.FAILED, None
                recorded = mine.update(state=state, **common)
            else:
                state, retry_at = DeliveryState.PENDING, now + backoff(delivery.attempts)
                recorded = mine.update(next_attempt_at=retry_at, **common)
            if recorded:
                subscription.update(
                    last_failure_at=now, consecutive_failures=F("consecutive_failures") + 1
                )
    return Outcome(delivery, result, state, retry_at, bool(recorded))


def _log(outcome: Outcome) -> None:
    delivery, result = outcome.delivery, outcome.result
    what = (
        f"delivery {delivery.pk} ({event_id(delivery.sequence)} {delivery.event_type}) "
        f"to subscription {delivery.subscription_id} {delivery.subscription.url}: "
        f"attempt {delivery.attempts}/{MAX_ATTEMPTS}, "
        f"{result.status or 'no answer'} in {result.seconds:.2f} s"
    )
    if not outcome.recorded:
        logger.warning("%s; its lease had run out, another attempt decides", what)
    elif outcome.state == DeliveryState.DELIVERED:
        logger.info("%s; delivered", what)
    elif outcome.state == DeliveryState.FAILED:
        logger.warning("%s; %s; failed for good (send it again from the admin)", what, result.error)
    else:
        logger.warning(
            "%s; %s; retry at %s",
            what,
            result.error,
            outcome.retry_at.isoformat(timespec="seconds"),
        )


@dataclass
class Tally:
    attempted: int = 0
    delivered: int = 0
    retrying: int = 0
    failed: int = 0
    fanned_out: int = 0

    def add(self, outcome: Outcome) -> None:
        self.attempted += 1
        if outcome.state == DeliveryState.DELIVERED:
            self.delivered += 1
        elif outcome.state == DeliveryState.FAILED:
            self.failed += 1
        else:
            self.retrying += 1

    def line(self) -> str:
        return (
            f"Summary: events fanned out {self.fanned_out}, attempted {self.attempted}, "
            f"delivered {self.delivered}, to retry {self.retrying}, failed for good {self.failed}"
        )


def deliver_round(
    *, tally: Tally, claim_size: int = 10, should_stop=lambda: False, on_attempt=None
) -> int:
    """Fan out, then claim and attempt due deliveries until none is due (or told to stop).
    Returns how many attempts were made."""
    tally.fanned_out += fan_out()
    made = 0
    while not should_stop():
        claimed = claim(limit=claim_size)
        if not claimed:
            break
        for index, delivery in enumerate(claimed):
            if should_stop():
                release(claimed[index:])
                break
            outcome = attempt(delivery)
            tally.add(outcome)
            made += 1
            if on_attempt is not None:
                on_attempt(outcome)
    return made

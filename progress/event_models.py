"""Change events (written by database triggers, progress.event_sql) and webhook subscriptions and
deliveries (contract section 6). Imported by progress.models."""

from django.db import models
from django.db.models import Q


class EventType(models.TextChoices):
    ENROLLMENT_CREATED = "enrollment.created"
    ENROLLMENT_STATUS_CHANGED = "enrollment.status_changed"
    ENROLLMENT_DELETED = "enrollment.deleted"
    PROGRESS_CHANGED = "progress.changed"
    PROGRESS_DELETED = "progress.deleted"


class Event(models.Model):
    """One change, recorded in the writing transaction. Append-only: only the triggers insert,
    only prune_events deletes. No foreign keys: an event outlives the rows it tells about."""

    sequence = models.BigAutoField(primary_key=True)
    type = models.CharField(max_length=40, choices=EventType.choices)
    occurred_at = models.DateTimeField()
    course_id = models.IntegerField()
    user_id = models.IntegerField()
    data = models.JSONField()

    class Meta:
        db_table = "progress_events"
        ordering = ["sequence"]
        indexes = [
            # The feed's filters, each walked in sequence order.
            models.Index(fields=["course_id", "sequence"], name="idx_events_course"),
            models.Index(fields=["user_id", "sequence"], name="idx_events_user"),
        ]

    def __str__(self):
        return f"{self.public_id} {self.type}"

    @property
    def public_id(self) -> str:
        return event_id(self.sequence)


def event_id(sequence: int) -> str:
    """The event's `id` (and the deliveries' `webhook-id`): unique, and opaque to consumers."""
    return f"evt_{sequence:012d}"


class EventPruneMark(models.Model):
    """One row: the highest sequence prune_events has deleted through. A feed cursor below it
    may have missed events, so it is answered with 410."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    pruned_through = models.BigIntegerField(default=0)
    pruned_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "progress_event_prune_mark"

    def __str__(self):
        return f"pruned through {self.pruned_through}"


class WebhookSubscription(models.Model):
    url = models.URLField(max_length=2000)
    secret = models.CharField(
        max_length=200, help_text="whsec_ followed by the base64 of the signing key."
    )
    event_types = models.JSONField(
        default=list,
        blank=True,
        help_text="Event types to send; empty means every type.",
    )
    course = models.ForeignKey(
        "courseprogress.Course",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="webhook_subscriptions",
        help_text="Only this course's events; empty means every course.",
    )
    is_active = models.BooleanField(default=True)
    description = models.CharField(max_length=200, blank=True)
    # The last event sequence turned into deliveries for this subscription (fan-out cursor).
    cursor = models.BigIntegerField(default=0, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    last_success_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_failure_at = models.DateTimeField(null=True, blank=True, editable=False)
    consecutive_failures = models.PositiveIntegerField(default=0, editable=False)

    class Meta:
        db_table = "progress_webhook_subscriptions"
        ordering = ["id"]

    def __str__(self):
        return f"#{self.pk} {self.url}"


class DeliveryState(models.TextChoices):
    PENDING = "pending", "pending (due or retrying)"
    DELIVERED = "delivered"
    FAILED = "failed", "failed (retries exhausted)"


class WebhookDelivery(models.Model):
    """One event for one subscription. The body is kept, so that a failed delivery can be sent
    again after its event has been pruned."""

    subscription = models.ForeignKey(
        WebhookSubscription, on_delete=models.CASCADE, related_name="deliveries"
    )
    sequence = models.BigIntegerField(help_text="The event's sequence.")
    event_type = models.CharField(max_length=40)
    course_id = models.IntegerField()
    user_id = models.IntegerField()
    body = models.TextField(help_text="The JSON body sent, exactly.")
    state = models.CharField(
        max_length=16, choices=DeliveryState.choices, default=DeliveryState.PENDING
    )
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField()
    # A worker that claims the delivery leases it until then; a worker killed mid-attempt
    # leaves the lease to run out, and the attempt is made again (at least once).
    leased_until = models.DateTimeField(null=True, blank=True)
    lease_token = models.CharField(max_length=32, blank=True)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "progress_webhook_deliveries"
        ordering = ["-id"]
        verbose_name_plural = "webhook deliveries"
        constraints = [
            models.UniqueConstraint(
                fields=["subscription", "sequence"], name="webhook_delivery_once_per_event"
            ),
            models.CheckConstraint(
                condition=Q(state__in=DeliveryState.values), name="webhook_delivery_state_valid"
            ),
        ]
        indexes = [
            # Due deliveries, soonest first.
            models.Index(
                fields=["next_attempt_at"],
                name="idx_deliveries_due",
                condition=Q(state=DeliveryState.PENDING),
            ),
            # An earlier pending delivery of the same learner and course holds the later back.
            models.Index(
                fields=["subscription", "user_id", "course_id", "sequence"],
                name="idx_deliveries_order",
                condition=Q(state=DeliveryState.PENDING),
            ),
            models.Index(fields=["state", "-id"], name="idx_deliveries_state"),
        ]

    def __str__(self):
        return f"delivery {self.pk}: event {self.sequence} to #{self.subscription_id}"

    @property
    def event_public_id(self) -> str:
        return event_id(self.sequence)

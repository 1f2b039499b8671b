"""The change feed (contract section 6): the cursor, retention (who may read which events:
progress.policy.can_read_feed and feed_scope).

Why a consumer that follows `next` sees every event exactly once and in order
---------------------------------------------------------------------------------
Events are numbered by a sequence when they are written, not when their transaction commits.
If transaction A numbers event 7, then B numbers 8 and commits, a reader asking for
`sequence > 6` sees 8 but not 7; it moves its cursor to 8 and never sees 7 once A commits.

The feed therefore lists events only up to a *horizon* below which nothing new can appear
(design (a) of issue 16; PostgreSQL functions in progress.event_sql):

- Writer: before a transaction numbers its first event, its trigger reads the sequence's last
  value L and takes a shared transaction-level advisory lock keyed by L (namespaced, see
  event_sql.HORIZON_LOCK_BASE). Every number it takes afterwards is > L. The lock is held until
  it commits or rolls back; it never blocks anyone (shared, and nobody takes it exclusively).
- Reader (progress_events_horizon()): reads the sequence's last value L0, *then* the keys of
  the horizon locks still held (the smallest: Lmin). horizon = min(L0, Lmin). Then, in a new
  statement (a new READ COMMITTED snapshot), it lists events with after < sequence <= horizon.
- Why nothing is missed: take an event numbered s <= horizon <= L0. It was numbered before L0
  was read, so its transaction took its lock (key < s) before that too. Had the transaction
  still been running when pg_locks was read, Lmin would be < s: so it had ended by then.
  PostgreSQL makes a commit visible before it releases the transaction's locks, so the listing
  statement that follows either sees the event or the event was rolled back for good. Either
  way nothing numbered <= horizon can appear later, so `next` may move up to the horizon.
- The sequence has CACHE 1, so its last value is the last number any session took. The cost is
  one lock per writing transaction (not per statement: a transaction-local setting remembers
  it) and one read of pg_locks per feed page; no writer ever waits for the feed or for another
  writer's commit.

On SQLite one writer runs at a time and numbers its events while it holds the write lock, so
numbers are in commit order and the horizon is simply everything committed.

`next` never moves past the horizon: when a page is full it is the last event listed
(`hasMore` true); otherwise it is the horizon (events past it are not yet safe to list).
"""

from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q, TextField
from django.db.models.functions import Cast
from django.utils import timezone
from rest_framework import status
from rest_framework.exceptions import APIException, ValidationError

from courseprogress import replicas
from courseprogress.renderers import json_fragment
from progress.event_models import Event, EventPruneMark, EventType, event_id
from progress.formatting import iso
from progress.policy import feed_scope

FEED_PARAMS = ("after", "courseId", "userId", "type", "limit")
DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
MAX_ID = 2**31 - 1  # ids are the guide's integer columns
MAX_CURSOR = 10**18 - 1
EVENT_VALUES = ("sequence", "type", "occurred_at", "course_id", "user_id", "data_json")


class CursorGone(APIException):
    status_code = status.HTTP_410_GONE
    default_detail = (
        "This cursor is older than the events kept (EVENT_RETENTION_DAYS); "
        "start again without `after`."
    )
    default_code = "gone"


@dataclass(frozen=True)
class FeedPage:
    events: list[dict]
    after: int
    next: int
    limit: int
    has_more: bool

    def as_response(self) -> dict:
        return {
            "results": self.events,
            "pagination": {
                "after": self.after,
                "next": self.next,
                "limit": self.limit,
                "hasMore": self.has_more,
            },
        }


# --- reading --------------------------------------------------------------------------------


def horizon() -> int:
    """The highest sequence below which no event can still appear (see the module's doc).

    Must be called before, and in another statement than, the query that lists events."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SELECT progress_events_horizon()")
        else:
            cursor.execute("SELECT coalesce(max(sequence), 0) FROM progress_events")
        return cursor.fetchone()[0]


def last_sequence() -> int:
    """The last sequence number handed out (committed or not): new subscriptions start here."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "SELECT coalesce(pg_sequence_last_value('progress_events_sequence_seq'), 0)"
            )
        else:
            cursor.execute("SELECT coalesce(max(sequence), 0) FROM progress_events")
        return cursor.fetchone()[0]


def pruned_through() -> int:
    return EventPruneMark.objects.filter(pk=1).values_list("pruned_through", flat=True).first() or 0


def format_event(row: dict) -> dict:
    return {
        "id": event_id(row["sequence"]),
        "sequence": row["sequence"],
        "type": row["type"],
        "occurredAt": iso(row["occurred_at"]),
        "courseId": row["course_id"],
        "userId": row["user_id"],
        # The stored JSON text, spliced into the response as it is: no decoding and encoding
        # again of a thousand small objects per page.
        "data": json_fragment(row["data_json"].encode()),
    }


def read_events(
    *, after: int | None, scope: Q | None = None, types=None, limit: int = DEFAULT_LIMIT
) -> FeedPage:
    """Events after `after` (None: from the oldest kept) up to the horizon, oldest first.

    `scope` narrows them (a course, a learner, what a user may see); `types` too. 410
    (CursorGone) when `after` is older than what prune_events has kept.
    """
    mark = pruned_through()
    if after is None:
        after = mark
    elif after < mark:
        raise CursorGone()
    limit_to = horizon()  # first, in its own statement
    # With replicas, the events are listed on one that has replayed the primary's WAL up to a
    # position read after the horizon: every event up to the horizon was committed by then.
    position = replicas.primary_position() if replicas.enabled() else None

    def listed() -> list[dict]:
        events = Event.objects.filter(scope or Q(), sequence__gt=after, sequence__lte=limit_to)
        if types:
            events = events.filter(type__in=sorted(types))
        events = events.annotate(data_json=Cast("data", TextField()))
        return list(events.order_by("sequence").values(*EVENT_VALUES)[: limit + 1])

    rows = replicas.compute_at(position, listed)
    has_more = len(rows) > limit
    rows = rows[:limit]
    next_after = rows[-1]["sequence"] if has_more else max(after, limit_to)
    return FeedPage(
        events=[format_event(row) for row in rows],
        after=after,
        next=next_after,
        limit=limit,
        has_more=has_more,
    )


# --- the endpoint's parameters and roles ----------------------------------------------------


def _digits(text, *, name: str, low: int, high: int, errors: dict):
    if isinstance(text, str) and text.isascii() and text.isdigit() and len(text) <= 18:
        value = int(text)
        if low <= value <= high:
            return value
    errors[name] = [f"A whole number from {low} to {high} is required."]
    return None


def _raw(params) -> tuple[dict, dict]:
    """The feed's parameters: each once and not blank, but `type`, which may repeat."""
    raw, errors = {}, {}
    for name in FEED_PARAMS:
        if name not in params:
            continue
        values = params.getlist(name) if hasattr(params, "getlist") else [params[name]]
        if name != "type" and len(values) > 1:
            errors[name] = ["Give this parameter once."]
        elif any(value == "" for value in values):
            errors[name] = ["This field may not be blank."]
        raw[name] = values if name == "type" else values[0]
    return raw, errors


def feed_page(*, actor, params) -> dict:
    """GET /user-progress/events, once policy.CanReadFeed has let `actor` in (403): 400, then
    410, then the page of the events policy.feed_scope lets them see."""
    raw, errors = _raw(params)
    scope = feed_scope(actor)
    filters = {}
    after = limit = None
    if "after" in raw and "after" not in errors:
        after = _digits(raw["after"], name="after", low=0, high=MAX_CURSOR, errors=errors)
    for name, field in (("courseId", "course_id"), ("userId", "user_id")):
        if name in raw and name not in errors:
            filters[field] = _digits(raw[name], name=name, low=1, high=MAX_ID, errors=errors)
    if "limit" in raw and "limit" not in errors:
        text = raw["limit"]
        if text.isascii() and text.isdigit() and len(text) > 18 and text.strip("0"):
            limit = MAX_LIMIT  # above the maximum: lowered to it, however large
        else:
            limit = _digits(text, name="limit", low=1, high=MAX_CURSOR, errors=errors)
    types = set()
    if "type" in raw and "type" not in errors:
        for value in raw["type"]:
            for part in value.split(","):
                if part not in EventType.values:
                    errors["type"] = [
                        f"{part!r} is not an event type; one of: {', '.join(EventType.values)}."
                    ]
                    break
                types.add(part)
    if errors:
        raise ValidationError(errors)
    page = read_events(
        after=after,
        scope=scope & Q(**filters),
        types=types,
        limit=min(limit or DEFAULT_LIMIT, MAX_LIMIT),
    )
    return page.as_response()


# --- retention ------------------------------------------------------------------------------


def prune_events(*, now=None, batch_size: int = 10_000, dry_run: bool = False) -> int:
    """Delete the events older than EVENT_RETENTION_DAYS, oldest first, in batches.

    Only a prefix in sequence order goes (up to the first event that is still young enough),
    so that "everything up to pruned_through is gone, everything after it is kept" holds and
    a cursor can be told exactly when it is too old (410). Delivered and failed webhook
    deliveries older than the retention go too. Returns the number of events deleted (or that
    would be, with dry_run)."""
    from progress.event_models import DeliveryState, WebhookDelivery

    cutoff = (now or timezone.now()) - timedelta(days=settings.EVENT_RETENTION_DAYS)
    deleted = 0
    start = pruned_through()
    while True:
        with transaction.atomic():
            mark, _ = EventPruneMark.objects.select_for_update().get_or_create(pk=1)
            start = max(start, mark.pruned_through)
            rows = list(
                Event.objects.filter(sequence__gt=start)
                .order_by("sequence")
                .values_list("sequence", "occurred_at")[:batch_size]
            )
            old = 0
            for _, occurred_at in rows:
                if occurred_at >= cutoff:
                    break
                old += 1
            if not old:
                break
            through = rows[old - 1][0]
            if not dry_run:
                Event.objects.filter(sequence__gt=start, sequence__lte=through).delete()
                mark.pruned_through = through
                mark.pruned_at = timezone.now()
                mark.save()
            deleted += old
            start = through
            if old < len(rows) or len(rows) < batch_size:
                break
    if not dry_run:
        WebhookDelivery.objects.filter(
            state__in=[DeliveryState.DELIVERED, DeliveryState.FAILED], created_at__lt=cutoff
        ).delete()
    return deleted

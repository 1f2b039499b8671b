"""Webhooks against a real HTTP receiver on 127.0.0.1 (contract section 6), on both databases.
The multi-process cases (SIGKILL, two workers) are in test_webhook_workers.py."""

import io
import json
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone
from standardwebhooks import Webhook, WebhookVerificationError

from progress import services, webhook_http, webhooks
from progress.models import (
    DeliveryState,
    EnrollmentStatus,
    Event,
    WebhookDelivery,
    WebhookSubscription,
)
from tests.webhook_receiver import ENDLESS, HANG, running_receiver


@pytest.fixture(autouse=True)
def _local_receivers(settings):
    settings.WEBHOOK_ALLOW_PRIVATE_NETWORKS = True
    settings.WEBHOOK_TIMEOUT = 1.0
    settings.WEBHOOK_LEASE_SECONDS = 3.0


@pytest.fixture
def receiver():
    with running_receiver() as receiver:
        yield receiver


def deliver() -> str:
    out = io.StringIO()
    call_command("deliver_webhooks", "--once", stdout=out, stderr=io.StringIO())
    return out.getvalue()


def subscribe(url, **options) -> dict:
    out = io.StringIO()
    args = ["webhooks", "add", "--url", url]
    for name, value in options.items():
        args += [f"--{name}", str(value)]
    call_command(*args, stdout=out)
    return json.loads(out.getvalue())


def make_due():
    """What the passing of the backoff delay does: the retries are due now."""
    WebhookDelivery.objects.filter(state=DeliveryState.PENDING).update(
        next_attempt_at=timezone.now()
    )


def test_deliveries_are_signed_so_a_standard_webhooks_verifier_accepts_them(
    client_for, superuser, receiver, learner, course
):
    made = subscribe(receiver.url)
    assert made["secret"].startswith("whsec_")
    services.enrol(user_id=learner.pk, course_id=course.pk)
    summary = deliver()

    assert len(receiver.requests) == 1
    request = receiver.requests[0]
    assert request.path == "/hooks?src=courseprogress"
    payload = Webhook(made["secret"]).verify(request.body, request.headers)
    [event] = client_for(superuser).get("/user-progress/events").json()["results"]
    assert payload == event
    assert request.headers["webhook-id"] == event["id"]
    assert request.headers["content-type"] == "application/json"
    assert request.headers["webhook-signature"].startswith("v1,")
    # Tampered, or with another secret: refused by the same verifier.
    with pytest.raises(WebhookVerificationError):
        Webhook(made["secret"]).verify(request.body.replace("ENROLLED", "DROPPED"), request.headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(webhooks.generate_secret()).verify(request.body, request.headers)

    delivery = WebhookDelivery.objects.get()
    assert (delivery.state, delivery.attempts, delivery.last_status_code) == ("delivered", 1, 200)
    subscription = WebhookSubscription.objects.get()
    assert subscription.last_success_at is not None
    assert subscription.consecutive_failures == 0
    assert "delivered 1" in summary
    # Run again: nothing is sent twice.
    deliver()
    assert len(receiver.requests) == 1


def test_a_500_then_a_200_is_delivered_on_the_retry(receiver, learner, course):
    subscribe(receiver.url)
    receiver.plan = [500]
    services.enrol(user_id=learner.pk, course_id=course.pk)
    before = timezone.now()
    deliver()
    delivery = WebhookDelivery.objects.get()
    assert (delivery.state, delivery.attempts, delivery.last_status_code) == ("pending", 1, 500)
    assert "HTTP 500" in delivery.last_error
    # The first retry waits 5 s, give or take 20 %.
    wait = delivery.next_attempt_at - before
    assert timedelta(seconds=3.9) <= wait <= timedelta(seconds=6.5)
    subscription = WebhookSubscription.objects.get()
    assert subscription.consecutive_failures == 1
    assert subscription.last_failure_at is not None

    deliver()  # not due yet
    assert len(receiver.requests) == 1
    make_due()
    deliver()
    delivery.refresh_from_db()
    assert (delivery.state, delivery.attempts, delivery.last_status_code) == ("delivered", 2, 200)
    assert receiver.ids() == [delivery.event_public_id] * 2
    assert WebhookSubscription.objects.get().consecutive_failures == 0


def test_a_receiver_that_hangs_times_out_and_is_retried(receiver, learner, course):
    subscribe(receiver.url)
    receiver.plan = [HANG]
    services.enrol(user_id=learner.pk, course_id=course.pk)
    deliver()
    delivery = WebhookDelivery.objects.get()
    assert delivery.state == "pending"
    assert delivery.last_status_code is None
    assert "timed out" in delivery.last_error
    assert delivery.leased_until is None
    make_due()
    deliver()
    delivery.refresh_from_db()
    assert delivery.state == "delivered"
    assert len(receiver.requests) == 2


def test_redirects_are_not_followed(receiver, learner, course):
    subscribe(receiver.url)
    receiver.plan = [302]
    services.enrol(user_id=learner.pk, course_id=course.pk)
    deliver()
    delivery = WebhookDelivery.objects.get()
    assert (delivery.state, delivery.last_status_code) == ("pending", 302)
    assert "redirects are not followed" in delivery.last_error
    assert [request.path for request in receiver.requests] == ["/hooks?src=courseprogress"]


def test_at_most_64_kb_of_a_response_is_read(receiver):
    receiver.plan = [ENDLESS]
    result = webhook_http.post(
        receiver.url, b"{}", {"Content-Type": "application/json"}, timeout=30, allow_private=True
    )
    assert result.ok
    assert len(result.body_excerpt) == webhook_http.EXCERPT_CHARS
    # The worker stopped reading and hung up long before the receiver's 50 MB were sent.
    assert receiver.endless_done.wait(30)
    assert receiver.endless_outcome == "client went away"


def test_a_learners_status_changes_arrive_in_order_even_when_the_first_attempt_failed(
    client_for, receiver, learner, course, contents, enrolled
):
    subscribe(receiver.url, events="enrollment.status_changed")
    receiver.plan = [500]
    client = client_for(learner)
    for content in contents:  # ENROLLED -> IN_PROGRESS, then -> COMPLETED with the last one
        client.post(
            "/user-progress/update",
            {"courseId": course.pk, "courseContentId": content.pk, "progressStatus": "COMPLETED"},
            format="json",
        )
    services.move_enrollment(
        enrolled.pk, EnrollmentStatus.CERTIFIED, certificate_url="https://example.com/c/1"
    )

    deliver()  # the first one fails; the two after it wait for it
    assert len(receiver.requests) == 1
    assert WebhookDelivery.objects.filter(state="pending").count() == 3
    make_due()
    deliver()
    moves = [(r.event["data"]["from"], r.event["data"]["to"]) for r in receiver.requests]
    assert moves == [
        ("ENROLLED", "IN_PROGRESS"),
        ("ENROLLED", "IN_PROGRESS"),
        ("IN_PROGRESS", "COMPLETED"),
        ("COMPLETED", "CERTIFIED"),
    ]
    sequences = [r.event["sequence"] for r in receiver.requests[1:]]
    assert sequences == sorted(sequences)
    assert set(WebhookDelivery.objects.values_list("state", flat=True)) == {"delivered"}


def test_retries_end_in_failed_and_the_admin_sends_it_again(
    client, superuser, receiver, learner, course
):
    subscribe(receiver.url)
    receiver.plan = [503] * webhooks.MAX_ATTEMPTS
    services.enrol(user_id=learner.pk, course_id=course.pk)
    for _ in range(webhooks.MAX_ATTEMPTS):
        deliver()
        make_due()
    delivery = WebhookDelivery.objects.get()
    assert (delivery.state, delivery.attempts) == ("failed", webhooks.MAX_ATTEMPTS)
    assert len(receiver.requests) == webhooks.MAX_ATTEMPTS
    assert WebhookSubscription.objects.get().consecutive_failures == webhooks.MAX_ATTEMPTS
    deliver()
    assert len(receiver.requests) == webhooks.MAX_ATTEMPTS  # no more attempts

    client.force_login(superuser)
    listing = client.get("/admin/progress/webhookdelivery/", {"state__exact": "failed"})
    assert listing.status_code == 200
    assert delivery.event_public_id in listing.content.decode()
    assert (
        client.get("/admin/progress/webhookdelivery/", {"state__exact": "delivered"})
        .context["cl"]
        .result_count
        == 0
    )
    response = client.post(
        "/admin/progress/webhookdelivery/",
        {"action": "send_again", "_selected_action": [delivery.pk]},
    )
    assert response.status_code == 302
    deliver()
    delivery.refresh_from_db()
    assert (delivery.state, delivery.attempts) == ("delivered", 1)
    assert len(receiver.requests) == webhooks.MAX_ATTEMPTS + 1


def test_the_backoff_schedule_spans_about_a_day_with_jitter():
    total = sum(webhooks.BACKOFF, timedelta())
    assert timedelta(hours=24) <= total <= timedelta(hours=36)
    waits = {webhooks.backoff(1) for _ in range(20)}
    assert len(waits) > 1  # jitter
    assert all(timedelta(seconds=4) <= wait <= timedelta(seconds=6) for wait in waits)
    assert timedelta(hours=11.2) <= webhooks.backoff(7) <= timedelta(hours=16.8)


def test_a_new_subscription_gets_only_later_events_and_respects_its_filters(
    receiver, learner, other_learner, course, other_course
):
    services.enrol(user_id=learner.pk, course_id=course.pk)  # before: not sent
    subscribe(receiver.url, course=course.pk, events="enrollment.created,enrollment.deleted")
    services.enrol(user_id=other_learner.pk, course_id=course.pk)
    services.enrol(user_id=other_learner.pk, course_id=other_course.pk)  # another course
    services.move_enrollment(
        services.enrol(user_id=learner.pk, course_id=course.pk)[0].pk, EnrollmentStatus.DROPPED
    )  # another type
    deliver()
    assert [
        (r.event["type"], r.event["userId"], r.event["courseId"]) for r in receiver.requests
    ] == [("enrollment.created", other_learner.pk, course.pk)]


def test_a_disabled_subscription_gets_nothing_until_enabled(receiver, learner, course):
    made = subscribe(receiver.url)
    call_command("webhooks", "disable", str(made["id"]), stdout=io.StringIO())
    services.enrol(user_id=learner.pk, course_id=course.pk)
    deliver()
    assert receiver.requests == []
    call_command("webhooks", "enable", str(made["id"]), stdout=io.StringIO())
    deliver()
    assert len(receiver.requests) == 1


def test_an_expired_lease_is_claimed_again_and_a_live_one_is_not(receiver, learner, course):
    """What a worker killed mid-attempt leaves behind (the multi-process test kills one)."""
    subscribe(receiver.url)
    services.enrol(user_id=learner.pk, course_id=course.pk)
    webhooks.fan_out()
    [claimed] = webhooks.claim()
    assert webhooks.claim() == []  # leased: no other worker takes it
    WebhookDelivery.objects.filter(pk=claimed.pk).update(
        leased_until=timezone.now() - timedelta(seconds=1)
    )
    deliver()
    delivery = WebhookDelivery.objects.get()
    assert (delivery.state, delivery.attempts) == ("delivered", 2)
    # The first worker's late outcome does not overwrite the second's.
    outcome = webhooks.record(claimed, webhook_http.Result(500, "HTTP 500", 0.1))
    assert outcome.recorded is False
    assert WebhookDelivery.objects.get().state == "delivered"


# --- the SSRF guard -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/hook",
        "http://10.1.2.3/hook",
        "http://192.168.0.10:8080/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "http://0.0.0.0/hook",
        "ftp://example.com/hook",
        "file:///etc/passwd",
        "http:///nohost",
    ],
)
def test_webhooks_add_refuses_private_addresses_and_other_schemes(db, settings, url):
    settings.WEBHOOK_ALLOW_PRIVATE_NETWORKS = False
    with pytest.raises(CommandError, match="Not subscribed"):
        subscribe(url)
    assert not WebhookSubscription.objects.exists()


def test_a_name_resolving_to_a_private_address_is_refused_at_delivery(
    settings, receiver, learner, course
):
    subscribe(f"http://localhost:{receiver.port}/hook")  # allowed when made (a name)
    settings.WEBHOOK_ALLOW_PRIVATE_NETWORKS = False
    services.enrol(user_id=learner.pk, course_id=course.pk)
    deliver()
    delivery = WebhookDelivery.objects.get()
    assert delivery.state == "pending"
    assert delivery.last_error.startswith("refused: localhost resolves to")
    assert "loopback" in delivery.last_error
    assert receiver.requests == []


def test_public_addresses_pass_the_guard():
    assert webhook_http.address_problem("93.184.216.34") is None
    assert webhook_http.address_problem("2606:4700::1111") is None
    assert webhook_http.address_problem("100.64.0.1") == "not public"  # carrier-grade NAT
    assert webhook_http.url_problem("https://example.com/x", allow_private=False) is None


# --- the commands ---------------------------------------------------------------------------


def test_webhooks_add_list_and_disable(course, learner):
    services.enrol(user_id=learner.pk, course_id=course.pk)
    made = subscribe("https://hooks.example.com/in", events="progress.changed", course=course.pk)
    subscription = WebhookSubscription.objects.get(pk=made["id"])
    assert subscription.secret == made["secret"]
    assert subscription.event_types == ["progress.changed"]
    assert subscription.course_id == course.pk
    assert subscription.cursor == Event.objects.order_by("-sequence").first().sequence

    given = webhooks.generate_secret()
    assert subscribe("https://hooks.example.com/b", secret=given)["secret"] == given

    out = io.StringIO()
    call_command("webhooks", "list", stdout=out)
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [line["url"] for line in lines] == [
        "https://hooks.example.com/in",
        "https://hooks.example.com/b",
    ]
    assert "secret" not in lines[0]
    assert lines[0]["events"] == ["progress.changed"]
    assert lines[1]["events"] == "all"

    call_command("webhooks", "disable", str(made["id"]), stdout=io.StringIO())
    assert WebhookSubscription.objects.get(pk=made["id"]).is_active is False
    with pytest.raises(CommandError, match="does not exist"):
        call_command("webhooks", "disable", "999999", stdout=io.StringIO())


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("events", "progress.exploded", "Unknown event types"),
        ("secret", "not-a-secret", "must start with whsec_"),
        ("secret", "whsec_c2hvcnQ=", "24 to 64 bytes"),
        ("course", "999999", "does not exist"),
    ],
)
def test_webhooks_add_refuses_bad_options(db, option, value, message):
    with pytest.raises(CommandError, match=message):
        subscribe("https://hooks.example.com/in", **{option: value})


def test_deliver_webhooks_logs_one_line_per_attempt(receiver, learner, course, caplog):
    subscribe(receiver.url)
    receiver.plan = [500]
    services.enrol(user_id=learner.pk, course_id=course.pk)
    services.enrol(user_id=learner.pk, course_id=course.pk)
    with caplog.at_level("INFO", logger="courseprogress.webhooks"):
        summary = deliver()
    lines = [r.getMessage() for r in caplog.records if r.name == "courseprogress.webhooks"]
    assert len(lines) == 1
    assert "attempt 1/8, 500" in lines[0]
    assert "retry at" in lines[0]
    assert "attempted 1, delivered 0, to retry 1, failed for good 0" in summary


def test_deliver_webhooks_once_shows_progress_when_asked(receiver, learner, course):
    subscribe(receiver.url)
    services.enrol(user_id=learner.pk, course_id=course.pk)
    out, err = io.StringIO(), io.StringIO()
    call_command("deliver_webhooks", "--once", "--progress", stdout=out, stderr=err)
    assert "deliver_webhooks: 1 attempts" in err.getvalue()
    assert "Summary: events fanned out 1, attempted 1, delivered 1" in out.getvalue()


# --- the admin ------------------------------------------------------------------------------


def test_the_subscription_admin_is_for_superusers(client, superuser, make_user, receiver, course):
    made = subscribe(receiver.url, course=course.pk)
    client.force_login(superuser)
    page = client.get("/admin/progress/webhooksubscription/")
    assert page.status_code == 200
    text = page.content.decode()
    for column in ("last success at", "last failure at", "consecutive failures", "pending"):
        assert column in text.lower()
    assert receiver.url.replace("&", "&amp;") in text
    assert (
        client.get(f"/admin/progress/webhooksubscription/{made['id']}/change/").status_code == 200
    )

    staff = make_user("staffer", is_staff=True, perms=["view_all_progress"])
    client.force_login(staff)
    assert client.get("/admin/progress/webhooksubscription/").status_code == 403
    assert client.get("/admin/progress/webhookdelivery/").status_code == 403


def test_adding_a_subscription_in_the_admin(client, superuser, settings):
    client.force_login(superuser)
    settings.WEBHOOK_ALLOW_PRIVATE_NETWORKS = False
    refused = client.post(
        "/admin/progress/webhooksubscription/add/",
        {"url": "http://10.0.0.5/hook", "is_active": "on"},
    )
    assert refused.status_code == 200
    assert "only public addresses are allowed" in refused.content.decode()
    assert not WebhookSubscription.objects.exists()

    added = client.post(
        "/admin/progress/webhooksubscription/add/",
        {
            "url": "https://hooks.example.com/in",
            "event_types": ["progress.changed"],
            "is_active": "on",
        },
        follow=True,
    )
    assert added.status_code == 200
    subscription = WebhookSubscription.objects.get()
    assert webhooks.secret_problem(subscription.secret) is None
    assert subscription.event_types == ["progress.changed"]
    assert subscription.secret in added.content.decode()  # shown once to give the receiver

"""A course's dashboard in the admin: its analytics, who may open it."""

from datetime import datetime
from zoneinfo import ZoneInfo

from courseprogress.models import Course
from tests.admin.tools import (
    COURSES,
    messages_of,
    run_action,
)

# --- dashboard --------------------------------------------------------------------------------


def figure(html: str, key: str) -> str:
    start = html.index(f'data-figure="{key}"')
    value = html.index('class="value">', start) + len('class="value">')
    return html[value : html.index("</div>", value)]


def test_dashboard_shows_the_course_analytics(as_instructor, world):
    response = as_instructor.get(f"{COURSES}{world.course.pk}/dashboard/")
    assert response.status_code == 200
    html = response.content.decode()
    assert figure(html, "totalEnrollments") == "3"
    assert figure(html, "activeUsers") == "1"
    assert figure(html, "completedUsers") == "1"
    assert figure(html, "averageProgress") == "38.89 %"  # (50 + 300) / (3 learners x 3 lessons)
    assert figure(html, "completionRate") == "33.33 %"
    assert figure(html, "totalActivities") == "4"
    bars = response.context["content_chart"]["rows"]
    assert [(b["title"], b["completions"], b["minutes"]) for b in bars] == [
        ("Lesson 1", 1, "15"),
        ("Lesson 2", 1, "30"),
        ("Lesson 3", 1, "40"),
    ]
    assert 'data-completions="1" data-minutes="15"' in html
    statuses = {s["status"]: s["count"] for s in response.context["status_chart"]["segments"]}
    assert statuses == {
        "ENROLLED": 1,
        "IN_PROGRESS": 1,
        "COMPLETED": 1,
        "CERTIFIED": 0,
        "DROPPED": 0,
        "EXPIRED": 0,
    }
    behind = response.context["behind"]
    assert [(b["username"], b["progress"]) for b in behind] == [("carol", "0"), ("alice", "16.67")]
    assert "<svg" in html


def test_dashboard_follows_admin_actions(as_instructor, world):
    url = f"{COURSES}{world.course.pk}/dashboard/"
    assert figure(as_instructor.get(url).content.decode(), "completedUsers") == "1"
    run_action(as_instructor, "complete", world.enrollment["alice"])
    assert figure(as_instructor.get(url).content.decode(), "completedUsers") == "2"


def test_course_page_links_to_its_dashboard(as_instructor, world):
    page = as_instructor.get(f"{COURSES}{world.course.pk}/change/")
    assert f'href="{COURSES}{world.course.pk}/dashboard/"'.encode() in page.content


def test_dashboard_of_a_course_not_taught_is_403_whether_or_not_it_exists(as_instructor, world):
    assert as_instructor.get(f"{COURSES}{world.other_course.pk}/dashboard/").status_code == 403
    assert as_instructor.get(f"{COURSES}999999/dashboard/").status_code == 403


def test_admin_sees_any_dashboard_and_is_sent_back_from_a_missing_course(as_superuser, world):
    assert as_superuser.get(f"{COURSES}{world.other_course.pk}/dashboard/").status_code == 200
    # As the admin does for any missing object: the styled course list, with a message.
    response = as_superuser.get(f"{COURSES}999999/dashboard/", follow=True)
    assert response.redirect_chain == [(COURSES, 302)]
    assert response.status_code == 200
    assert 'Course with ID "999999" does not exist. Perhaps it was deleted?' in messages_of(
        response
    )
    assert b'id="changelist"' in response.content


def test_dashboard_says_when_its_figures_were_computed_in_the_site_time_zone(
    as_instructor, world, settings
):
    settings.TIME_ZONE = "Asia/Kolkata"
    response = as_instructor.get(f"{COURSES}{world.course.pk}/dashboard/")
    html = response.content.decode()
    computed = datetime.fromisoformat(response.context["analytics"]["computedAt"])
    local = computed.astimezone(ZoneInfo("Asia/Kolkata"))
    expected = f"Figures as of {local.day} {local:%b %Y, %H:%M:%S} (Asia/Kolkata)."
    assert expected in html
    assert "Z (UTC)" not in html


def test_dashboard_of_an_empty_course(as_superuser, world):
    empty = Course.objects.create(title="Empty")
    response = as_superuser.get(f"{COURSES}{empty.pk}/dashboard/")
    assert response.status_code == 200
    assert b"This course has no content yet." in response.content
    assert b"Nobody is enrolled yet." in response.content

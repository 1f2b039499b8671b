"""The admin in a real browser: Debian's chromium, driven by Playwright, against the live server.

Skipped only on a developer machine without /usr/bin/chromium; under CI (CI set) a missing
chromium fails the run. The world is the one of tests/admin/conftest.py.
"""

import os
import re
from pathlib import Path

import pytest
from django.db import connections

from progress.models import Enrollment

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),  # the live server reads what the test committed
    pytest.mark.skipif(
        not os.path.exists(CHROMIUM) and not os.environ.get("CI"),
        reason="needs Debian's chromium at /usr/bin/chromium (CI installs it)",
    ),
]


@pytest.fixture
def browser(monkeypatch):
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"CI is set but {CHROMIUM} is missing: apt-get install chromium")
    from playwright.sync_api import sync_playwright

    # Playwright's sync API keeps an event loop running on this thread; the test's own ORM
    # calls stay synchronous and one at a time, so Django may allow them. While that loop runs,
    # Django keeps this thread's connections apart from its usual ones (asgiref's Local): close
    # them before the loop stops, or they outlive the test and block dropping the test database.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        yield browser
        browser.close()
        connections.close_all()


@pytest.fixture
def page(browser, live_server):
    context = browser.new_context(base_url=live_server.url, viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(20_000)
    yield page
    context.close()


def log_in(page, username: str, password: str) -> None:
    from playwright.sync_api import expect

    page.goto("/admin/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.get_by_role("button", name="Log in").click()
    expect(page.locator("#user-tools")).to_contain_text(username)


def run_action(page, action: str, *usernames: str) -> None:
    for username in usernames:
        page.locator("#result_list tbody tr", has_text=username).locator(".action-select").check()
    page.select_option("select[name=action]", action)
    page.get_by_role("button", name="Go").click()


def test_instructor_works_on_their_course(page, world):
    from playwright.sync_api import expect

    log_in(page, "instructor", "pw-instructor")

    # Only the course they teach.
    page.get_by_role("link", name="Courses").first.click()
    results = page.locator("#result_list")
    expect(results).to_contain_text("Python 101")
    expect(results).not_to_contain_text("Rust 201")

    # Enrollments of that course only; the course filter offers no other course.
    page.goto("/admin/progress/enrollment/")
    expect(results.locator("tbody tr")).to_have_count(3)
    expect(results).not_to_contain_text("dave")
    sidebar = page.locator("#changelist-filter")
    expect(sidebar).to_contain_text("Python 101")
    expect(sidebar).not_to_contain_text("Rust 201")

    # Filter by status.
    sidebar.get_by_role("link", name="In Progress").click()
    expect(page).to_have_url(re.compile(r"status__exact=IN_PROGRESS"))
    expect(results.locator("tbody tr")).to_have_count(1)
    expect(results).to_contain_text("alice")

    # An action: drop carol.
    page.goto("/admin/progress/enrollment/")
    run_action(page, "drop", "carol")
    expect(page.locator(".messagelist")).to_contain_text("1 enrollment now DROPPED.")
    expect(results.locator("tbody tr", has_text="carol")).to_contain_text("Dropped")
    assert Enrollment.objects.get(pk=world.enrollment["carol"].pk).status == "DROPPED"

    # An action with a form: certify bob with his certificate URL.
    run_action(page, "certify", "bob")
    expect(page.locator("h1")).to_contain_text("Certify enrollments")
    page.get_by_label("bob in Python 101").fill("https://certs.example.com/bob")
    page.get_by_role("button", name="Certify").click()
    expect(page.locator(".messagelist")).to_contain_text("1 enrollment now CERTIFIED.")
    bob = Enrollment.objects.get(pk=world.enrollment["bob"].pk)
    assert (bob.status, bob.certificate_url) == ("CERTIFIED", "https://certs.example.com/bob")

    # The dashboard, from the course page.
    page.goto("/admin/courseprogress/course/")
    page.get_by_role("link", name="Python 101").click()
    page.get_by_role("link", name="Progress dashboard").click()
    expect(page.locator("h1")).to_contain_text("Progress dashboard: Python 101")

    def figure(key):
        return page.locator(f'[data-figure="{key}"] .value')

    expect(figure("totalEnrollments")).to_have_text("3")
    expect(figure("activeUsers")).to_have_text("1")  # alice
    expect(figure("completedUsers")).to_have_text("1")  # bob, certified
    expect(figure("completionRate")).to_have_text("33.33 %")
    expect(figure("averageProgress")).to_have_text("38.89 %")
    expect(figure("totalActivities")).to_have_text("4")
    bars = page.locator("#content-chart .content-row")
    expect(bars).to_have_count(3)
    expect(bars.nth(0)).to_have_attribute("data-completions", "1")
    expect(bars.nth(0)).to_have_attribute("data-minutes", "15")
    expect(bars.nth(2)).to_have_attribute("data-minutes", "40")
    expect(page.locator('.legend [data-status="DROPPED"] strong')).to_have_text("1")
    expect(page.locator('.legend [data-status="CERTIFIED"] strong')).to_have_text("1")
    behind = page.locator("#behind tbody tr")
    expect(behind).to_have_count(1)  # carol dropped out; bob finished
    expect(behind.first).to_contain_text("alice")
    expect(behind.first).to_contain_text("16.67 %")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)

    # Another course's dashboard is refused.
    response = page.goto(f"/admin/courseprogress/course/{world.other_course.pk}/dashboard/")
    assert response.status == 403


def test_superuser_sees_every_course(page, world, superuser):
    from playwright.sync_api import expect

    log_in(page, "root", "pw-root")
    page.get_by_role("link", name="Courses").first.click()
    results = page.locator("#result_list")
    expect(results).to_contain_text("Python 101")
    expect(results).to_contain_text("Rust 201")

    page.goto("/admin/progress/enrollment/")
    expect(results.locator("tbody tr")).to_have_count(4)
    expect(results).to_contain_text("dave")

    page.goto(f"/admin/courseprogress/course/{world.other_course.pk}/dashboard/")
    expect(page.locator('[data-figure="totalEnrollments"] .value')).to_have_text("1")


# --- the lists at a desk's width (issue 14, item 12) -----------------------------------------

LIST_COLUMNS = {
    "/admin/progress/contentprogress/": [
        "user",
        "content",
        "status",
        "percent",
        "minutes",
        "updated",
    ],
    "/admin/progress/enrollment/": [
        "user",
        "status",
        "progress_percent",
        "enrolled",
        "completed",
    ],
}


def test_the_lists_show_what_an_instructor_scans_for_without_scrolling(browser, live_server):
    """The demo set (long course title, e-mail addresses) at 1400 px: every column an
    instructor looks for is on screen, and the list does not scroll sideways."""
    from playwright.sync_api import expect

    from progress.management.demo import demo_password, load_demo

    load_demo()
    context = browser.new_context(base_url=live_server.url, viewport={"width": 1400, "height": 900})
    page = context.new_page()
    page.set_default_timeout(20_000)
    try:
        log_in(page, "demo_instructor", demo_password("demo_instructor"))
        ARTIFACTS.mkdir(exist_ok=True)
        for url, columns in LIST_COLUMNS.items():
            page.goto(url)
            expect(page.locator("#result_list tbody tr").first).to_be_visible()
            name = url.strip("/").rsplit("/", 1)[-1]
            page.screenshot(path=str(ARTIFACTS / f"{name}-list-1400.png"))
            results = page.locator("#changelist .results")
            overflow = results.evaluate("el => el.scrollWidth - el.clientWidth")
            assert overflow <= 0, f"{url} scrolls sideways by {overflow} px"
            for column in columns:
                box = page.locator(f"#result_list thead th.column-{column}").bounding_box()
                assert box is not None, (url, column)
                assert box["x"] + box["width"] <= 1400, (url, column, box)
        # The enrollment list's progress column shows each learner's course progress.
        page.goto("/admin/progress/enrollment/")
        row = page.locator("#result_list tbody tr", has_text="demo_active")
        expect(row.locator("td.field-progress_percent")).to_have_text("48.00 %")
    finally:
        context.close()

"""Admin URLs and helpers that read a changelist, its messages and what an action did."""

from django.contrib.messages import get_messages

from progress.models import Enrollment

ENROLLMENTS = "/admin/progress/enrollment/"
PROGRESS = "/admin/progress/contentprogress/"
COURSES = "/admin/courseprogress/course/"
CONTENTS = "/admin/courseprogress/coursecontent/"


def staff(user):
    user.is_staff = True
    user.save(update_fields=["is_staff"])
    return user


def listed(response) -> list:
    """The objects on a changelist page."""
    return list(response.context["cl"].result_list)


def messages_of(response) -> list[str]:
    return [str(message) for message in get_messages(response.wsgi_request)] or [
        str(message) for message in response.context.get("messages", [])
    ]


def status_of(world, username) -> str:
    return Enrollment.objects.get(pk=world.enrollment[username].pk).status


def run_action(client, action, *enrollments, **extra):
    data = {"action": action, "index": 0, "_selected_action": [e.pk for e in enrollments]}
    return client.post(ENROLLMENTS, {**data, **extra}, follow=True)


def enrollment_form(enrollment, **changes):
    data = {
        "status": enrollment.status,
        "certificate_url": enrollment.certificate_url or "",
        "metadata": "{}",
    }
    return {**data, **changes}

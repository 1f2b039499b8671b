"""Small factories for set-up that is itself domain behaviour: enrolments and progress go
through the real services, so the enrollment sync, the learner merge and the cache stamps run
as they do for a request. Personas (learner, instructor, admin ...) are fixtures in conftest.

    enrol(alice, course)
    record(alice, contents[0], "IN_PROGRESS", percent=50, duration=10)
    complete(bob, contents, durations=(20, 30, 40))
"""

from collections.abc import Iterable, Sequence

from courseprogress.models import Course, CourseContent
from progress import services
from progress.models import ContentProgress, Enrollment


def enrol(user, course: Course) -> Enrollment:
    """The user's enrollment in the course, through services.enrol (re-enrols a dropped one)."""
    enrollment, _ = services.enrol(user_id=user.pk, course_id=course.pk)
    return enrollment


def record(user, content: CourseContent, status: str = "COMPLETED", **fields) -> ContentProgress:
    """One progress write, as POST /user-progress/update makes it: services.record_progress
    with `percent`, `duration`, `metadata`, `exact` passed through."""
    return services.record_progress(
        user_id=user.pk,
        course_id=content.course_id,
        content_id=content.pk,
        status=status,
        **fields,
    )


def complete(
    user, contents: Iterable[CourseContent], *, durations: Sequence[int] | None = None
) -> None:
    """Every item COMPLETED, in order (with its duration in minutes when given)."""
    contents = list(contents)
    minutes = [None] * len(contents) if durations is None else durations
    for content, duration in zip(contents, minutes, strict=True):
        record(user, content, "COMPLETED", **({} if duration is None else {"duration": duration}))

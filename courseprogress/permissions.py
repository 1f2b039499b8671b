"""Who may do what (contract section 1, "Roles").

Predicates read only the user and the ids as given, never whether those ids exist, so that
authorisation (403) always runs before existence (404) and leaks nothing.
"""

from rest_framework.permissions import BasePermission

from courseprogress.models import CourseStaff

VIEW_ALL = "progress.view_all_progress"
UPDATE_ANY = "progress.update_any_progress"


def is_admin(user) -> bool:
    return bool(user and user.is_authenticated and (user.is_superuser or user.has_perm(VIEW_ALL)))


def is_system(user) -> bool:
    """A service account that posts progress for anyone (superusers hold every permission)."""
    return bool(user and user.is_authenticated and user.has_perm(UPDATE_ANY))


def may_act_for_anyone(user) -> bool:
    """System users and admins may name another learner and set fields exactly."""
    return is_system(user) or is_admin(user)


def taught_course_ids(user) -> set[int]:
    """Courses where the user is OWNER or INSTRUCTOR; memoised on the user for the request."""
    if not (user and user.is_authenticated):
        return set()
    cached = getattr(user, "_taught_course_ids", None)
    if cached is None:
        cached = set(
            CourseStaff.objects.filter(user_id=user.pk).values_list("course_id", flat=True)
        )
        user._taught_course_ids = cached
    return cached


def is_course_staff(user, course_id) -> bool:
    if not isinstance(course_id, int) or not (user and user.is_authenticated):
        return False
    cached = getattr(user, "_taught_course_ids", None)
    if cached is not None:
        return course_id in cached
    return CourseStaff.objects.filter(user_id=user.pk, course_id=course_id).exists()


def can_manage_course(user, course_id) -> bool:
    """Course staff of that course, or an admin."""
    return is_course_staff(user, course_id) or is_admin(user)


def can_view_learner(user, course_id, user_id) -> bool:
    """The learner themself, the course's staff, or an admin."""
    return (
        (user and user.is_authenticated and user.pk == user_id)
        or is_course_staff(user, course_id)
        or is_admin(user)
    )


class CanViewLearnerProgress(BasePermission):
    """For /user-progress/{courseId}/{userId}[/activities]."""

    def has_permission(self, request, view):
        kwargs = view.kwargs
        return can_view_learner(request.user, kwargs["course_id"], kwargs["user_id"])


class IsCourseStaffOrAdmin(BasePermission):
    """For /user-progress/course/{courseId}/..."""

    def has_permission(self, request, view):
        return can_manage_course(request.user, view.kwargs["course_id"])

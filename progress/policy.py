"""Who may do what: the roles, one predicate per operation, one DRF permission class per endpoint.

Roles (contract section 1): an *admin* is a superuser or holds `progress.view_all_progress`;
*course staff* have a CourseStaff row (OWNER or INSTRUCTOR) for the course; a *system* user holds
`progress.update_any_progress`; anybody else is a *learner*, for their own data only.

Predicates read only the actor and the ids as given (from the URL, the body or the query
string, before any validation), never whether those ids exist, so that authorisation (403)
always runs before existence (404) and validation (400) and leaks nothing. The API's permission
classes, the admin, the dashboard and the change feed all ask them. Each predicate asks the
cheaper question first where both may be asked (the order is part of the SQL statement counts
the suite pins): course staff cost one query per request (then memoised on the user), an
admin check costs a permission-cache read.
"""

from django.db.models import Q
from rest_framework.exceptions import ValidationError
from rest_framework.permissions import IsAuthenticated

from courseprogress.exceptions import AccessDenied
from courseprogress.models import CourseStaff
from progress import read_cache
from progress.models import Enrollment
from progress.read_cache import Stamp
from progress.rules import ProgressStatus
from progress.serializers import json_int

VIEW_ALL = "progress.view_all_progress"
UPDATE_ANY = "progress.update_any_progress"

# --- roles ------------------------------------------------------------------------------------


def is_admin(user) -> bool:
    return bool(user and user.is_authenticated and (user.is_superuser or user.has_perm(VIEW_ALL)))


def is_system(user) -> bool:
    """A service account that posts progress for anyone (superusers hold every permission)."""
    return bool(user and user.is_authenticated and user.has_perm(UPDATE_ANY))


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


def course_stamp_for(user, course_id: int) -> Stamp | None:
    """The course's cache stamp (read_cache.course_stamp_at) for a course-scoped read, with
    taught_course_ids' memo filled by the same statement when it is still empty: the permission
    then decides with no statement of its own, and the view checks its cache against this
    stamp (read in this request: contract 3.9). Nothing here decides: can_view_course does."""
    known = getattr(user, "_taught_course_ids", None) is not None
    if known or not (user and user.is_authenticated):
        return read_cache.course_stamp_at(course_id)
    stamp, user._taught_course_ids = read_cache.course_stamp_and_staff(course_id, user.pk)
    return stamp


def is_course_staff(user, course_id) -> bool:
    """Course staff of that course (one query the first time in a request, then none)."""
    return isinstance(course_id, int) and course_id in taught_course_ids(user)


def visible_course_ids(user) -> set[int] | None:
    """The courses whose learners `user` may see, as a set (None: every course, for admins):
    the set form of can_view_course, for querysets (the admin's lists, filters and search)."""
    return None if is_admin(user) else taught_course_ids(user)


def _is(actor, user_id) -> bool:
    """The actor themself, named by an id as sent (5 and 5.0 name user 5; "5" does not)."""
    return bool(actor and actor.is_authenticated and user_id == actor.pk)


# --- one predicate per operation (the rows of tests/test_authorization_matrix.py) ---------------


def can_view_learner(actor, *, course_id, user_id) -> bool:
    """3.1 one learner in a course, 3.4 their activity log: the learner, the course's staff,
    admins."""
    return _is(actor, user_id) or is_course_staff(actor, course_id) or is_admin(actor)


def can_view_course(actor, *, course_id) -> bool:
    """3.2 every learner of a course, 3.5 its analytics, the admin's dashboard and course-scoped
    pages: the course's staff, admins."""
    return is_course_staff(actor, course_id) or is_admin(actor)


def can_view_learners(actor, *, course_id, user_ids) -> bool:
    """3.6 several learners at once: the course's staff, admins; a learner only for [own id]."""
    own_only = isinstance(user_ids, list) and len(user_ids) == 1 and _is(actor, user_ids[0])
    return own_only or can_view_course(actor, course_id=course_id)


def can_record_for_anyone(actor) -> bool:
    """3.3: system users and admins post progress for anyone, set or clear LOCKED, and set the
    fields they send exactly (learners' updates merge)."""
    return is_system(actor) or is_admin(actor)


def can_record_progress(actor, *, user_id, status) -> bool:
    """3.3: a learner records their own progress, never LOCKED; system users and admins
    record anyone's, LOCKED included."""
    return can_record_for_anyone(actor) or (_is(actor, user_id) and status != ProgressStatus.LOCKED)


def record_progress_refusal(actor, *, user_id) -> tuple[str, str]:
    """Why can_record_progress said no, as (field, reason): the 403's `errors`, which say what
    the caller may not do and never whether an id exists."""
    if not _is(actor, user_id):
        return "userId", "Only system users and admins post progress for others."
    return "progressStatus", "Only system users and admins set or clear LOCKED."


def can_enrol(actor, *, course_id, user_id) -> bool:
    """3.7 POST: a learner enrols themself; the course's staff, admins and system users enrol
    anyone."""
    return (
        _is(actor, user_id)
        or can_view_course(actor, course_id=course_id)
        or can_record_for_anyone(actor)
    )


def can_move_enrollment(actor, *, course_id) -> bool:
    """3.7 PATCH (and the admin's enrollment form and actions): the staff of the enrollment's
    course, admins. `course_id` is None for an enrollment that does not exist: only an admin
    may learn that (404); anyone else gets 403. Admins first: that is what the admin site has
    loaded already, and the enrollment's course was one query."""
    return is_admin(actor) or is_course_staff(actor, course_id)


def can_correct_progress(actor) -> bool:
    """The admin's progress form (set a row's fields exactly, by hand): admins only."""
    return is_admin(actor)


def can_manage_webhooks(actor) -> bool:
    """Webhook subscriptions and deliveries in the admin: superusers only (a subscription sends
    every learner's changes to another system)."""
    return bool(actor and actor.is_active and actor.is_superuser)


def can_read_feed(actor, *, course_id: str | None, user_id: str | None) -> bool:
    """Section 6, the change feed, given the courseId and userId query parameters as sent
    (strings, or None when absent): admins read everything; system users nothing; anyone else
    their own events, and course staff every event of the courses they teach. A learner naming
    another learner is refused; so is course staff naming a course they do not teach (unless
    they name themself: their own events as a learner there). Ids are compared as sent, so a
    403 never depends on whether an id is well formed or exists."""
    if is_admin(actor):
        return True
    if is_system(actor):
        return False
    taught = taught_course_ids(actor)
    own = str(actor.pk)
    if user_id is not None and user_id != own and not taught:
        return False
    return course_id is None or not taught or _as_taught(course_id, taught) or user_id == own


def _as_taught(course: str, taught: set[int]) -> bool:
    return course.isascii() and course.isdigit() and len(course) <= 18 and int(course) in taught


def feed_scope(actor) -> Q:
    """The events `actor` may read (after can_read_feed): everything for admins, else their own
    and those of the courses they teach."""
    if is_admin(actor):
        return Q()
    taught = taught_course_ids(actor)
    if not taught:
        return Q(user_id=actor.pk)
    return Q(user_id=actor.pk) | Q(course_id__in=sorted(taught))


# --- the API's permission classes: one per endpoint -------------------------------------------
#
# Each reads the ids the way its endpoint carries them: URL ones from view.kwargs, body ones
# from request.data, the feed from the query string. Anything raised here (a body that is not a
# JSON object: 400) is answered as it is; DRF asks them after authentication (401) and before the
# view's existence (404), validation (400) and state (409) checks.


def body_object(request) -> dict:
    """The request body, when it is a JSON object; else a 400 (whoever asks)."""
    data = request.data
    if not isinstance(data, dict):
        raise ValidationError({"non_field_errors": ["The body must be a JSON object."]})
    return data


class _Guarded(IsAuthenticated):
    """Authenticated, and the operation's predicate (`allows`).

    - Ids in the URL: asked for every method (a learner gets 403, not 405, for DELETE on
      another learner's progress).
    - Ids in the body or the query string: asked for the `methods` that carry them; OPTIONS and
      the methods the endpoint answers with 405 need a login only, as before.
    - Those endpoints (`deferred`) let a request whose format or query string could not be
      negotiated through: ApiView answers it (400/406) right after the permission checks and
      before the view, as it did when their role checks ran in the views.
    """

    methods: tuple[str, ...] | None = None  # None: every method
    deferred = False

    def has_permission(self, request, view):
        if not super().has_permission(request, view):
            return False
        if self.methods is not None and request.method not in self.methods:
            return True
        if self.deferred and getattr(request, "negotiation_error", None) is not None:
            return True
        return self.allows(request, view)

    def allows(self, request, view) -> bool:  # pragma: no cover - every subclass has its own
        raise NotImplementedError


class CanViewLearner(_Guarded):
    """GET /user-progress/{courseId}/{userId}[/activities]."""

    def allows(self, request, view):
        kwargs = view.kwargs
        return can_view_learner(
            request.user, course_id=kwargs["course_id"], user_id=kwargs["user_id"]
        )


class CanViewCourse(_Guarded):
    """GET /user-progress/course/{courseId}/all and .../analytics. The course's stamp is read
    with the staff check, in one statement, and kept on the view as `course_stamp` (None: no
    such course, a 404 for those allowed to ask; everyone else gets 403 first)."""

    def allows(self, request, view):
        course_id = view.kwargs["course_id"]
        view.course_stamp = course_stamp_for(request.user, course_id)
        return can_view_course(request.user, course_id=course_id)


class CanRecordProgress(_Guarded):
    """POST /user-progress/update: `userId` (default: the caller) and `progressStatus` from the
    body. The 403 names the field that was refused."""

    methods = ("POST",)
    deferred = True

    def allows(self, request, view):
        data = body_object(request)
        actor = request.user
        asked = {"user_id": data.get("userId", actor.pk), "status": data.get("progressStatus")}
        if can_record_progress(actor, **asked):
            return True
        raise AccessDenied(*record_progress_refusal(actor, user_id=asked["user_id"]))


class CanViewLearners(_Guarded):
    """POST /user-progress/bulk: `courseId` and `userIds` from the body."""

    methods = ("POST",)
    deferred = True

    def allows(self, request, view):
        data = body_object(request)
        return can_view_learners(
            request.user,
            course_id=json_int(data.get("courseId")),
            user_ids=data.get("userIds"),
        )


class CanEnrol(_Guarded):
    """POST /user-progress/enrollments: `courseId` and `userId` (default: the caller) from the
    body."""

    methods = ("POST",)
    deferred = True

    def allows(self, request, view):
        data = body_object(request)
        actor = request.user
        return can_enrol(
            actor, course_id=json_int(data.get("courseId")), user_id=data.get("userId", actor.pk)
        )


class CanMoveEnrollment(_Guarded):
    """PATCH /user-progress/enrollments/{enrollmentId}: the enrollment's course, looked up here
    (one query) and kept on the view as `enrollment_course_id` (None: no such enrollment)."""

    methods = ("PATCH",)
    deferred = True

    def allows(self, request, view):
        view.enrollment_course_id = (
            Enrollment.objects.filter(pk=view.kwargs["enrollment_id"])
            .values_list("course_id", flat=True)
            .first()
        )
        return can_move_enrollment(request.user, course_id=view.enrollment_course_id)


class CanReadFeed(_Guarded):
    """GET /user-progress/events: `courseId` and `userId` from the query string, as sent (the
    first value of each; a repeated or malformed one is the view's 400, after this)."""

    methods = ("GET", "HEAD")
    deferred = True

    def allows(self, request, view):
        params = request.query_params

        def sent(name):
            values = params.getlist(name)
            return values[0] if values else None

        return can_read_feed(request.user, course_id=sent("courseId"), user_id=sent("userId"))

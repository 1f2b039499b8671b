"""Thin views: permission -> selector or service -> response. The envelope is the renderer's."""

from django.http import Http404
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from courseprogress.permissions import (
    CanViewLearnerProgress,
    IsCourseStaffOrAdmin,
    can_manage_course,
    is_admin,
    is_course_staff,
    may_act_for_anyone,
)
from courseprogress.renderers import Paginated
from courseprogress.schema import envelope, responses
from courseprogress.throttling import ProgressUpdateThrottle
from progress import selectors, services
from progress.filters import DATE_OR_DATE_TIME_PATTERN
from progress.models import Enrollment, EnrollmentStatus, ProgressStatus
from progress.serializers import (
    ActivityOut,
    AnalyticsOut,
    BulkIn,
    CourseLearnerOut,
    EnrollIn,
    EnrollmentOut,
    EnrollmentPatchIn,
    LearnerProgressOut,
    ProgressRowOut,
    ProgressUpdateIn,
    format_enrollment,
    format_progress,
    json_int,
)


def body_object(request) -> dict:
    data = request.data
    if not isinstance(data, dict):
        raise ValidationError({"non_field_errors": ["The body must be a JSON object."]})
    return data


PAGE_NUMBER = {"type": "integer", "minimum": 1}
# What DateOrDateTimeField accepts: an RFC 3339 date, or date-time with its offset, 1970-9998.
DATE_PARAM = {
    "type": "string",
    "anyOf": [{"format": "date"}, {"format": "date-time"}],
    "pattern": DATE_OR_DATE_TIME_PATTERN,
}


class LearnerProgressView(APIView):
    permission_classes = [IsAuthenticated, CanViewLearnerProgress]
    success_message = "User progress retrieved successfully"

    @extend_schema(
        operation_id="user_progress_retrieve",
        responses=responses(
            {200: envelope("LearnerProgressEnvelope", LearnerProgressOut())}, 401, 403, 404
        ),
    )
    def get(self, request, course_id: int, user_id: int):
        return Response(selectors.get_learner_progress(course_id=course_id, user_id=user_id))


class ActivitiesView(APIView):
    permission_classes = [IsAuthenticated, CanViewLearnerProgress]
    success_message = "Activity logs retrieved successfully"

    @extend_schema(
        operation_id="user_progress_activities",
        parameters=[
            OpenApiParameter(
                "startDate", DATE_PARAM, description="ISO 8601 date or date-time, inclusive"
            ),
            OpenApiParameter(
                "endDate", DATE_PARAM, description="ISO 8601 date or date-time, inclusive"
            ),
            OpenApiParameter("status", str, enum=ProgressStatus.values),
            OpenApiParameter("page", PAGE_NUMBER, description="Page number, from 1"),
            OpenApiParameter(
                "limit", PAGE_NUMBER, description="Items per page (default 100, max 1000)"
            ),
        ],
        responses=responses(
            {200: envelope("ActivitiesEnvelope", ActivityOut(many=True), paginated=True)},
            400,
            401,
            403,
            404,
        ),
    )
    def get(self, request, course_id: int, user_id: int):
        page = selectors.get_activities_page(
            course_id=course_id, user_id=user_id, params=request.query_params
        )
        return Response(Paginated(page))


class CourseLearnersView(APIView):
    permission_classes = [IsAuthenticated, IsCourseStaffOrAdmin]
    success_message = "All users progress retrieved successfully"

    @extend_schema(
        operation_id="course_progress_list",
        parameters=[
            OpenApiParameter("status", str, enum=EnrollmentStatus.values),
            OpenApiParameter("sortBy", str, enum=["progress", "enrollmentDate", "completionDate"]),
            OpenApiParameter("order", str, enum=["asc", "desc"]),
            OpenApiParameter("page", PAGE_NUMBER, description="Page number, from 1"),
            OpenApiParameter(
                "limit", PAGE_NUMBER, description="Items per page (default 20, max 100)"
            ),
        ],
        responses=responses(
            {200: envelope("CourseLearnersEnvelope", CourseLearnerOut(many=True), paginated=True)},
            400,
            401,
            403,
            404,
        ),
    )
    def get(self, request, course_id: int):
        page = selectors.get_course_page(course_id=course_id, params=request.query_params)
        return Response(Paginated(page))


class CourseAnalyticsView(APIView):
    permission_classes = [IsAuthenticated, IsCourseStaffOrAdmin]
    success_message = "Course analytics retrieved successfully"

    @extend_schema(
        operation_id="course_analytics",
        responses=responses({200: envelope("AnalyticsEnvelope", AnalyticsOut())}, 401, 403, 404),
    )
    def get(self, request, course_id: int):
        return Response(selectors.get_course_analytics(course_id=course_id))


class ProgressUpdateView(APIView):
    permission_classes = [IsAuthenticated]
    throttle_classes = [ProgressUpdateThrottle]
    success_message = "Progress updated successfully"

    @extend_schema(
        operation_id="user_progress_update",
        request=ProgressUpdateIn,
        responses=responses(
            {200: envelope("ProgressRowEnvelope", ProgressRowOut())},
            *(400, 401, 403, 404, 409, 413, 429),
        ),
    )
    def post(self, request):
        data = body_object(request)
        actor = request.user
        privileged = may_act_for_anyone(actor)
        user_id = data.get("userId", actor.pk)
        # 403: naming another learner, or locking, is for system users and admins only.
        if not privileged and user_id != actor.pk:
            raise PermissionDenied()
        if not privileged and data.get("progressStatus") == ProgressStatus.LOCKED:
            raise PermissionDenied()
        # 404, on the ids as given.
        selectors.ensure_course_and_user(
            course_id=json_int(data.get("courseId")),
            user_id=json_int(user_id) if user_id != actor.pk else None,
        )
        # 400
        serializer = ProgressUpdateIn(data=data)
        serializer.is_valid(raise_exception=True)
        fields = serializer.validated_data
        # 409 and the write
        row = services.record_progress(
            user_id=fields.get("userId", actor.pk),
            course_id=fields["courseId"],
            content_id=fields["courseContentId"],
            status=fields["progressStatus"],
            percent=fields.get("progressPercent"),
            duration=fields.get("activityDuration"),
            metadata=fields.get("metadata"),
            exact=privileged,
        )
        return Response(format_progress(vars(row)))


class BulkProgressView(APIView):
    permission_classes = [IsAuthenticated]
    success_message = "Users progress retrieved successfully"

    @extend_schema(
        operation_id="user_progress_bulk",
        request=BulkIn,
        responses=responses(
            {200: envelope("BulkProgressEnvelope", CourseLearnerOut(many=True))},
            400,
            401,
            403,
            404,
            413,
        ),
    )
    def post(self, request):
        data = body_object(request)
        actor = request.user
        course_id = json_int(data.get("courseId"))
        own_only = data.get("userIds") == [actor.pk] and json_int(actor.pk) is not None
        if not (own_only or can_manage_course(actor, course_id)):
            raise PermissionDenied()
        contents, position = (
            selectors.content_count_at(course_id) if course_id is not None else (None, None)
        )
        serializer = BulkIn(data=data)
        serializer.is_valid(raise_exception=True)
        fields = serializer.validated_data
        return Response(
            selectors.get_bulk_progress(
                course_id=fields["courseId"],
                user_ids=fields["userIds"],
                contents=contents,
                position=position,
            )
        )


class EnrollmentsView(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(
        operation_id="enrollment_create",
        request=EnrollIn,
        responses=responses(
            {
                201: envelope("EnrollmentCreatedEnvelope", EnrollmentOut()),
                200: envelope("EnrollmentEnvelope", EnrollmentOut()),
            },
            400,
            401,
            403,
            404,
        ),
    )
    def post(self, request):
        data = body_object(request)
        actor = request.user
        course_id = json_int(data.get("courseId"))
        user_id = data.get("userId", actor.pk)
        if user_id != actor.pk and not (
            can_manage_course(actor, course_id) or may_act_for_anyone(actor)
        ):
            raise PermissionDenied()
        selectors.ensure_course_and_user(
            course_id=course_id, user_id=json_int(user_id) if user_id != actor.pk else None
        )
        serializer = EnrollIn(data=data)
        serializer.is_valid(raise_exception=True)
        enrollment, created = services.enrol(
            user_id=serializer.validated_data.get("userId", actor.pk),
            course_id=serializer.validated_data["courseId"],
        )
        self.success_message = (
            "Enrolled successfully" if created else "Enrollment retrieved successfully"
        )
        return Response(
            format_enrollment(vars(enrollment)),
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )


class EnrollmentDetailView(APIView):
    permission_classes = [IsAuthenticated]
    success_message = "Enrollment updated successfully"

    @extend_schema(
        operation_id="enrollment_update",
        request=EnrollmentPatchIn,
        responses=responses(
            {200: envelope("EnrollmentUpdatedEnvelope", EnrollmentOut())}, 400, 401, 403, 404, 409
        ),
    )
    def patch(self, request, enrollment_id: int):
        actor = request.user
        course_id = (
            Enrollment.objects.filter(pk=enrollment_id).values_list("course_id", flat=True).first()
        )
        if not is_admin(actor):
            if course_id is None or not is_course_staff(actor, course_id):
                raise PermissionDenied()
        elif course_id is None:
            raise Http404("Enrollment not found.")
        serializer = EnrollmentPatchIn(data=body_object(request))
        serializer.is_valid(raise_exception=True)
        fields = {
            {"enrollmentStatus": "status", "certificateUrl": "certificate_url"}.get(
                name, name
            ): value
            for name, value in serializer.validated_data.items()
        }
        enrollment = services.update_enrollment(enrollment_id, **fields)
        return Response(format_enrollment(vars(enrollment)))

from django.urls import path, register_converter

from courseprogress.converters import IdConverter
from progress import views

register_converter(IdConverter, "id")

urlpatterns = [
    path("user-progress/update", views.ProgressUpdateView.as_view(), name="progress-update"),
    path("user-progress/bulk", views.BulkProgressView.as_view(), name="progress-bulk"),
    path("user-progress/enrollments", views.EnrollmentsView.as_view(), name="enrollments"),
    path("user-progress/events", views.EventsView.as_view(), name="events"),
    path(
        "user-progress/enrollments/<id:enrollment_id>",
        views.EnrollmentDetailView.as_view(),
        name="enrollment-detail",
    ),
    path(
        "user-progress/course/<id:course_id>/all",
        views.CourseLearnersView.as_view(),
        name="course-learners",
    ),
    path(
        "user-progress/course/<id:course_id>/analytics",
        views.CourseAnalyticsView.as_view(),
        name="course-analytics",
    ),
    path(
        "user-progress/<id:course_id>/<id:user_id>",
        views.LearnerProgressView.as_view(),
        name="learner-progress",
    ),
    path(
        "user-progress/<id:course_id>/<id:user_id>/activities",
        views.ActivitiesView.as_view(),
        name="learner-activities",
    ),
]

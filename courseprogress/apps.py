from django.apps import AppConfig


class CourseprogressConfig(AppConfig):
    name = "courseprogress"
    verbose_name = "Course catalog"

from django.apps import AppConfig


class CourseprogressConfig(AppConfig):
    name = "courseprogress"
    verbose_name = "Course catalog"

    def ready(self):
        # The token cache's invalidation receivers, in every process (commands included).
        from courseprogress import authentication

        authentication.connect()

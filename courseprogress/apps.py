from django.apps import AppConfig


class CourseprogressConfig(AppConfig):
    name = "courseprogress"
    verbose_name = "Course catalog"

    def ready(self):
        # The token and permission caches' invalidation receivers, in every process (commands
        # included).
        from courseprogress import auth_backends, authentication

        authentication.connect()
        auth_backends.connect()

from django.apps import AppConfig
from django.core.management import call_command
from django.db.models.signals import post_migrate


def create_cache_tables(sender, using="default", **kwargs):
    """`migrate` also creates the tables of database caches (the throttles' without Redis);
    createcachetable skips those that exist."""
    call_command("createcachetable", database=using, verbosity=0)


class CourseprogressConfig(AppConfig):
    name = "courseprogress"
    verbose_name = "Course catalog"

    def ready(self):
        # The token and permission caches' invalidation receivers, in every process (commands
        # included).
        from courseprogress import auth_backends, authentication

        authentication.connect()
        auth_backends.connect()
        post_migrate.connect(
            create_cache_tables, sender=self, dispatch_uid="courseprogress.create_cache_tables"
        )

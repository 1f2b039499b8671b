"""The course catalog that progress refers to: courses, their ordered content, their staff."""

from django.conf import settings
from django.db import models


class Course(models.Model):
    title = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    # Moved by database triggers (progress/migrations/0003_freshness_triggers.py) whenever a
    # course-wide read can change in a way the enrollments' versions do not show: content
    # added, moved or removed, an enrollment deleted or moved, a row without an enrollment.
    cache_version = models.BigIntegerField(default=1, db_default=1, editable=False)

    class Meta:
        ordering = ["title", "id"]

    def __str__(self):
        return self.title


class CourseContent(models.Model):
    course = models.ForeignKey(Course, on_delete=models.CASCADE, related_name="contents")
    title = models.CharField(max_length=200)
    position = models.PositiveIntegerField(default=0, help_text="Order within the course.")

    class Meta:
        ordering = ["course_id", "position", "id"]
        indexes = [models.Index(fields=["course", "position"], name="idx_content_course_position")]
        verbose_name = "course content"
        verbose_name_plural = "course content"

    def __str__(self):
        return self.title


class CourseStaff(models.Model):
    class Role(models.TextChoices):
        OWNER = "OWNER", "Owner"
        INSTRUCTOR = "INSTRUCTOR", "Instructor"

    course = models.ForeignKey(Course, on_delete=models.CASCADE, related_name="staff")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="course_roles"
    )
    role = models.CharField(max_length=20, choices=Role.choices, default=Role.INSTRUCTOR)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["course", "user"], name="coursestaff_course_user_uniq"),
            models.CheckConstraint(
                condition=models.Q(role__in=["OWNER", "INSTRUCTOR"]),
                name="coursestaff_role_valid",
            ),
        ]
        verbose_name = "course staff member"
        verbose_name_plural = "course staff"

    def __str__(self):
        return f"{self.user} ({self.get_role_display()}) in {self.course}"

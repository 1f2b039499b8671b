from django.contrib import admin

from progress.models import ContentProgress, Enrollment


@admin.register(Enrollment)
class EnrollmentAdmin(admin.ModelAdmin):
    list_display = ["id", "user", "course", "status", "enrolled_at", "completed_at"]
    list_filter = ["status"]
    list_select_related = ["user", "course"]
    raw_id_fields = ["user", "course"]


@admin.register(ContentProgress)
class ContentProgressAdmin(admin.ModelAdmin):
    list_display = ["id", "user", "course", "content", "status", "percent", "updated_at"]
    list_filter = ["status"]
    list_select_related = ["user", "course", "content"]
    raw_id_fields = ["user", "course", "content"]

from django.contrib import admin

from courseprogress.models import Course, CourseContent, CourseStaff


class CourseContentInline(admin.TabularInline):
    model = CourseContent
    extra = 0


class CourseStaffInline(admin.TabularInline):
    model = CourseStaff
    extra = 0
    raw_id_fields = ["user"]


@admin.register(Course)
class CourseAdmin(admin.ModelAdmin):
    list_display = ["id", "title", "created_at"]
    search_fields = ["title"]
    inlines = [CourseContentInline, CourseStaffInline]

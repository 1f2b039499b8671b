"""Webhook subscriptions and their deliveries in the admin: superusers only (a subscription
sends every learner's changes to another system). Writes go through progress.webhooks."""

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db.models import Count, Q
from django.urls import reverse
from django.utils.html import format_html

from progress import webhooks
from progress.event_models import DeliveryState, EventType, WebhookDelivery, WebhookSubscription
from progress.policy import can_manage_webhooks


class SuperuserOnlyMixin:
    def has_module_permission(self, request):
        return can_manage_webhooks(request.user)

    def has_view_permission(self, request, obj=None):
        return self.has_module_permission(request)

    def has_add_permission(self, request):
        return self.has_module_permission(request)

    def has_change_permission(self, request, obj=None):
        return self.has_module_permission(request)

    def has_delete_permission(self, request, obj=None):
        return self.has_module_permission(request)


class SubscriptionForm(forms.ModelForm):
    url = forms.URLField(max_length=2000, assume_scheme="https")
    event_types = forms.MultipleChoiceField(
        choices=EventType.choices,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="None ticked: every type.",
    )
    secret = forms.CharField(
        required=False,
        help_text="whsec_ followed by base64; leave empty to have one generated.",
        widget=forms.TextInput(attrs={"size": 60}),
    )

    class Meta:
        model = WebhookSubscription
        fields = ["url", "event_types", "course", "is_active", "description", "secret"]

    def clean_url(self):
        url = self.cleaned_data["url"]
        if problem := webhooks.url_problem(url):
            raise ValidationError(problem)
        return url

    def clean_secret(self):
        secret = self.cleaned_data["secret"].strip()
        if not secret:
            if self.instance.pk:
                return self.instance.secret
            return webhooks.generate_secret()
        if problem := webhooks.secret_problem(secret):
            raise ValidationError(problem)
        return secret


@admin.register(WebhookSubscription)
class WebhookSubscriptionAdmin(SuperuserOnlyMixin, admin.ModelAdmin):
    form = SubscriptionForm
    list_display = [
        "id",
        "url",
        "events",
        "course",
        "is_active",
        "last_success_at",
        "last_failure_at",
        "consecutive_failures",
        "pending_deliveries",
        "failed_deliveries",
    ]
    list_filter = ["is_active"]
    list_select_related = ["course"]
    search_fields = ["url", "description"]
    autocomplete_fields = ["course"]
    readonly_fields = [
        "created_at",
        "cursor",
        "last_success_at",
        "last_failure_at",
        "consecutive_failures",
    ]
    actions = ["disable", "enable"]

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .annotate(
                pending=Count("deliveries", filter=Q(deliveries__state=DeliveryState.PENDING)),
                failed=Count("deliveries", filter=Q(deliveries__state=DeliveryState.FAILED)),
            )
        )

    @admin.display(description="events")
    def events(self, obj):
        return ", ".join(obj.event_types) if obj.event_types else "all"

    @admin.display(description="pending", ordering="pending")
    def pending_deliveries(self, obj):
        return self._deliveries_link(obj, DeliveryState.PENDING, obj.pending)

    @admin.display(description="failed", ordering="failed")
    def failed_deliveries(self, obj):
        return self._deliveries_link(obj, DeliveryState.FAILED, obj.failed)

    @staticmethod
    def _deliveries_link(obj, state, count):
        url = reverse("admin:progress_webhookdelivery_changelist")
        return format_html(
            '<a href="{}?subscription__id__exact={}&state__exact={}">{}</a>',
            url,
            obj.pk,
            state,
            count,
        )

    def save_model(self, request, obj, form, change):
        if change:
            obj.save()
            return
        created = webhooks.create_subscription(
            url=obj.url,
            event_types=obj.event_types,
            course_id=obj.course_id,
            secret=obj.secret,
            description=obj.description,
        )
        if not obj.is_active:
            webhooks.set_active(created.pk, False)
        obj.pk = created.pk
        obj.refresh_from_db()
        self.message_user(
            request,
            f"Give the receiver this signing secret: {created.secret}",
            messages.WARNING,
        )

    @admin.action(description="Disable selected subscriptions")
    def disable(self, request, queryset):
        count = queryset.update(is_active=False)
        self.message_user(request, f"{count} subscriptions disabled.", messages.SUCCESS)

    @admin.action(description="Enable selected subscriptions")
    def enable(self, request, queryset):
        count = queryset.update(is_active=True)
        self.message_user(request, f"{count} subscriptions enabled.", messages.SUCCESS)


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(SuperuserOnlyMixin, admin.ModelAdmin):
    list_display = [
        "id",
        "subscription",
        "event",
        "event_type",
        "user_id",
        "course_id",
        "state",
        "attempts",
        "next_attempt_at",
        "last_status_code",
        "delivered_at",
    ]
    list_filter = ["state", "event_type", "subscription"]
    list_select_related = ["subscription"]
    search_fields = ["=user_id", "=course_id", "=sequence"]
    search_help_text = "Search by learner id, course id or event sequence."
    readonly_fields = [field.name for field in WebhookDelivery._meta.fields]
    actions = ["send_again"]
    show_full_result_count = False

    @admin.display(description="event", ordering="sequence")
    def event(self, obj):
        return obj.event_public_id

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False  # read-only; "send again" is an action

    @admin.action(description="Send selected deliveries again", permissions=["view"])
    def send_again(self, request, queryset):
        count = webhooks.resend(queryset)
        self.message_user(
            request,
            f"{count} deliveries will be sent again by the worker (deliver_webhooks).",
            messages.SUCCESS,
        )

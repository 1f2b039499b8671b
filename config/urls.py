from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from courseprogress.views import TokenView, healthz, index

urlpatterns = [
    path("", index, name="index"),
    path("admin/", admin.site.urls),
    path("auth/token", TokenView.as_view(), name="auth-token"),
    path("healthz", healthz, name="healthz"),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
    path("", include("progress.urls")),
]

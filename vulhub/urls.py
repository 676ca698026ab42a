from django.contrib import admin
from django.urls import include, path

from tenants import views as tenant_views

from . import views
from .health import HealthDetailView, health

urlpatterns = [
    # Normally answered by vulhub.middleware.HealthCheckMiddleware; kept here for reverse().
    path("health/", health, name="health"),
    # Staff of the host's tenant, or HEALTH_DETAIL_TOKEN; a 404 for anyone else. Answered
    # without the slash too: APPEND_SLASH's redirect would tell anyone the page is there.
    path("health/detail/", HealthDetailView.as_view(), name="health-detail"),
    path("health/detail", HealthDetailView.as_view()),
    path("admin/", admin.site.urls),
    path("accounts/", include("tenants.account_views")),
    path("accounts/register/", tenant_views.register, name="register"),
    path("", views.dashboard, name="dashboard"),
    path("profile/", views.profile, name="profile"),
    path("students/<int:student_id>/", views.public_profile, name="student-profile"),
    path("challenges/", include("scoring.challenge_urls")),
    path("", include("scoring.urls")),
    path("news/", include("news.urls")),
]

handler500 = "vulhub.errors.server_error"

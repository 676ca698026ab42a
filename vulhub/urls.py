from django.contrib import admin
from django.urls import include, path
from health_check.contrib.psutil import Disk
from health_check.views import HealthCheckView

from tenants import views as tenant_views

from . import views
from .health import Migrations, WalArchive, health

urlpatterns = [
    # Normally answered by vulhub.middleware.HealthCheckMiddleware; kept here for reverse().
    path("health/", health, name="health"),
    path(
        "health/detail/",
        HealthCheckView.as_view(
            checks=[
                "health_check.checks.Database",
                "health_check.checks.Cache",
                Migrations,
                WalArchive,
                Disk,
            ]
        ),
        name="health-detail",
    ),
    path("admin/", admin.site.urls),
    path("accounts/", include("tenants.account_views")),
    path("accounts/register/", tenant_views.register, name="register"),
    path("", views.dashboard, name="dashboard"),
    path("profile/", views.profile, name="profile"),
    path("challenges/", include("scoring.challenge_urls")),
    path("", include("scoring.urls")),
]

handler500 = "vulhub.errors.server_error"

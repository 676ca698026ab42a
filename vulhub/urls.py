from django.contrib import admin
from django.urls import path
from health_check.contrib.psutil import Disk
from health_check.views import HealthCheckView

from .health import Migrations, health

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
                Disk,
            ]
        ),
        name="health-detail",
    ),
    path("admin/", admin.site.urls),
]

"""VulHub's URLs unchanged, with the benchmark's baseline views under /_bench/ (bench.settings only)."""

from django.urls import path

from vulhub.urls import handler500  # noqa: F401  (the same error pages)
from vulhub.urls import urlpatterns as vulhub_urlpatterns

from . import views

urlpatterns = [
    path("_bench/leaderboard-template/", views.leaderboard_template, name="bench-leaderboard-template"),
    path("_bench/ctfd-standings/", views.ctfd_standings, name="bench-ctfd-standings"),
    path("_bench/bare/", views.bare, name="bench-bare"),
    path("_bench/bare-query/", views.bare_query, name="bench-bare-query"),
    path("_bench/bare-query-atomic/", views.bare_query_atomic, name="bench-bare-query-atomic"),
    path("_bench/bare-nonce/", views.bare_nonce, name="bench-bare-nonce"),
    *vulhub_urlpatterns,
]

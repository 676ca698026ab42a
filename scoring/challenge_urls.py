from django.urls import path

from . import challenge_views as views

app_name = "challenges"

urlpatterns = [
    path("", views.catalogue, name="catalogue"),
    path("<slug:slug>/", views.detail, name="detail"),
]

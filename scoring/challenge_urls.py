from django.urls import path

from . import challenge_views as views
from . import file_views, hint_views

app_name = "challenges"

urlpatterns = [
    path("", views.catalogue, name="catalogue"),
    path("<slug:slug>/", views.detail, name="detail"),
    path("<slug:slug>/files/<int:file_id>/", file_views.download, name="file"),
    path("<slug:slug>/hints/<int:hint_id>/", hint_views.unlock, name="hint-unlock"),
]

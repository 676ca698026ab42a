from django.urls import path

from . import views

app_name = "scoring"

urlpatterns = [
    path("submissions/", views.submissions, name="submissions"),
    path("leaderboard/", views.leaderboard, name="leaderboard"),
    path("badges/", views.badges, name="badges"),
]

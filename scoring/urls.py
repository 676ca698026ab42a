from django.urls import path

from . import views, writeup_views

app_name = "scoring"

urlpatterns = [
    path("submissions/", views.submissions, name="submissions"),
    path("submissions/<int:pk>/", writeup_views.writeup, name="writeup"),
    path("submissions/<int:pk>/edit/", writeup_views.writeup_edit, name="writeup-edit"),
    path("leaderboard/", views.leaderboard, name="leaderboard"),
    path("badges/", views.badges, name="badges"),
]

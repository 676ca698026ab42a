from django.urls import path

from . import team_views, views, writeup_views

app_name = "scoring"

urlpatterns = [
    path("submissions/", views.submissions, name="submissions"),
    path("submissions/<int:pk>/", writeup_views.writeup, name="writeup"),
    path("submissions/<int:pk>/edit/", writeup_views.writeup_edit, name="writeup-edit"),
    path("leaderboard/", views.leaderboard, name="leaderboard"),
    path("badges/", views.badges, name="badges"),
    path("team/", team_views.my_team, name="team"),
    path("team/create/", team_views.team_create, name="team-create"),
    path("team/join/", team_views.team_join, name="team-join"),
    path("team/code/", team_views.team_new_code, name="team-code"),
    path("team/leave/", team_views.team_leave, name="team-leave"),
    path("teams/", team_views.standings, name="teams"),
    path("teams/<int:pk>/", team_views.team_detail, name="team-detail"),
]

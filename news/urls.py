from django.urls import path

from . import views

app_name = "news"
urlpatterns = [
    path("", views.notifications, name="notifications"),
    path("email/", views.email_preference, name="email_preference"),
]

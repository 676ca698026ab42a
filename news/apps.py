from django.apps import AppConfig


class NewsConfig(AppConfig):
    """Notifications and announcements: what a student is told, and what an instructor tells the class."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "news"
    verbose_name = "News"

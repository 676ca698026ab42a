from django.apps import AppConfig


class NewsConfig(AppConfig):
    """Notifications and announcements: what a student is told, and what an instructor tells the class."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "news"
    verbose_name = "Class news"

    def ready(self):
        from . import receivers, records

        records.register()  # what it records in the audit log and the event store
        receivers.connect()  # badges, grades and challenge openings become notifications

from django.apps import AppConfig


class ChallengesConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "challenges"
    verbose_name = "Challenges"

    def ready(self):
        from . import records

        records.register()  # what it records in the audit log and the event store

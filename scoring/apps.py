from django.apps import AppConfig


class ScoringConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "scoring"
    verbose_name = "Grading and badges"

    def ready(self):
        from . import changes, records

        records.register()  # what it records in the audit log and the event store
        changes.connect()  # challenges deleted or re-valued, students deleted: points follow

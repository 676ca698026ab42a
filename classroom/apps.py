from django.apps import AppConfig


class ClassroomConfig(AppConfig):
    """The instructor's view of the class in the admin: its home, the roster, the gradebook.

    It reads across the apps below it (users, challenges, submissions, badges, announcements)
    and owns no table of its own.
    """

    default_auto_field = "django.db.models.BigAutoField"
    name = "classroom"
    verbose_name = "Class"

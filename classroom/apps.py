from django.apps import AppConfig


class ClassroomConfig(AppConfig):
    """The instructor's view of the class in the admin: its home, the roster, the gradebook.

    It reads across the apps below it (users, challenges, submissions, badges, announcements)
    and owns no table of its own.
    """

    default_auto_field = "django.db.models.BigAutoField"
    name = "classroom"
    verbose_name = "Class"

    def ready(self):
        from django.contrib import admin

        # VulHub's names on every admin page (templates/admin/base_site.html adds the class's),
        # and where Django uses them outside the templates.
        admin.site.site_header = "VulHub"
        admin.site.site_title = "VulHub admin"
        admin.site.index_title = "Class overview"

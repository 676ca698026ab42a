from django.apps import AppConfig


class VulhubConfig(AppConfig):
    name = "vulhub"
    verbose_name = "VulHub"

    def ready(self):
        from . import checks  # noqa: F401  (registers the system checks)

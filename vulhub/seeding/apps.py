from django.apps import AppConfig


class SeedingConfig(AppConfig):
    """Demo data and generated data sets: the `seed` command and the bulk loader behind it."""

    name = "vulhub.seeding"
    label = "seeding"
    verbose_name = "Demo and generated data"

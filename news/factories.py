import factory
from factory.django import DjangoModelFactory

from tenants.factories import InstructorFactory, StudentFactory, TenantFactory

from .models import Announcement, Kind, Notification


class AnnouncementFactory(DjangoModelFactory):
    """An announcement as saved (AnnouncementFactory.create skips announcement_post: no notification)."""

    class Meta:
        model = Announcement

    tenant = factory.SubFactory(TenantFactory)
    title = factory.Sequence(lambda n: f"Announcement {n}")
    body = factory.Faker("paragraph")
    author = factory.SubFactory(InstructorFactory, tenant=factory.SelfAttribute("..tenant"))


class NotificationFactory(DjangoModelFactory):
    """A personal badge notification of a student of the tenant; visible now."""

    class Meta:
        model = Notification

    tenant = factory.SubFactory(TenantFactory)
    user = factory.SubFactory(StudentFactory, tenant=factory.SelfAttribute("..tenant"))
    kind = Kind.BADGE
    title = factory.Sequence(lambda n: f"You earned the badge “Badge {n}”")

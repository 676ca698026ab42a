import factory
from factory.django import DjangoModelFactory

from .models import Tenant, User

DEFAULT_PASSWORD = "correct-horse-battery"


class TenantFactory(DjangoModelFactory):
    class Meta:
        model = Tenant
        django_get_or_create = ("slug",)

    name = factory.Sequence(lambda n: f"School {n}")
    slug = factory.Sequence(lambda n: f"school-{n}")
    domain = factory.LazyAttribute(lambda t: f"{t.slug}.localhost")
    settings = factory.LazyFunction(lambda: {"theme": "default"})


class UserFactory(DjangoModelFactory):
    class Meta:
        model = User
        skip_postgeneration_save = True

    tenant = factory.SubFactory(TenantFactory)
    email = factory.Sequence(lambda n: f"user{n}@example.test")
    first_name = factory.Faker("first_name")
    last_name = factory.Faker("last_name")
    role = User.Role.STUDENT
    password = factory.django.Password(DEFAULT_PASSWORD)


class StudentFactory(UserFactory):
    role = User.Role.STUDENT


class InstructorFactory(UserFactory):
    role = User.Role.INSTRUCTOR


class TenantAdminFactory(UserFactory):
    role = User.Role.ADMIN

import factory
from factory.django import DjangoModelFactory

from tenants.factories import TenantFactory

from .models import Project

CATEGORIES = ["Web Security", "Cryptography", "Forensics", "Reverse Engineering", "Network Security"]


class ProjectFactory(DjangoModelFactory):
    class Meta:
        model = Project

    tenant = factory.SubFactory(TenantFactory)
    name = factory.Sequence(lambda n: f"Challenge {n}")
    slug = factory.Sequence(lambda n: f"challenge-{n}")
    description = factory.Faker("paragraph")
    category = factory.Iterator(CATEGORIES)
    difficulty = factory.Iterator([d for d, _ in Project.Difficulty.choices])
    points = 100
    is_published = True
    flag_hash = ""

    @classmethod
    def _create(cls, model_class, *args, flag=None, **kwargs):
        """`ProjectFactory(flag="FLAG{...}")` stores the digest of that flag."""
        project = model_class(*args, **kwargs)
        project.set_flag(flag)
        project.save()
        return project

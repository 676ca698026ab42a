import factory
from factory.django import DjangoModelFactory

from challenges.factories import ProjectFactory
from tenants.factories import StudentFactory, TenantFactory

from .models import Badge, Leaderboard, Submission, UserBadge


class SubmissionFactory(DjangoModelFactory):
    """A pending write-up; user and project stay inside the submission's tenant."""

    class Meta:
        model = Submission

    tenant = factory.SubFactory(TenantFactory)
    user = factory.SubFactory(StudentFactory, tenant=factory.SelfAttribute("..tenant"))
    project = factory.SubFactory(ProjectFactory, tenant=factory.SelfAttribute("..tenant"))
    kind = Submission.Kind.WRITEUP
    status = Submission.Status.PENDING
    answer = factory.Faker("paragraph")

    class Params:
        approved = factory.Trait(status=Submission.Status.APPROVED, score=100)
        rejected = factory.Trait(status=Submission.Status.REJECTED, score=0)


class BadgeFactory(DjangoModelFactory):
    class Meta:
        model = Badge

    tenant = factory.SubFactory(TenantFactory)
    name = factory.Sequence(lambda n: f"Badge {n}")
    slug = factory.Sequence(lambda n: f"badge-{n}")
    description = factory.Faker("sentence")
    icon = "star"


class UserBadgeFactory(DjangoModelFactory):
    class Meta:
        model = UserBadge

    tenant = factory.SubFactory(TenantFactory)
    user = factory.SubFactory(StudentFactory, tenant=factory.SelfAttribute("..tenant"))
    badge = factory.SubFactory(BadgeFactory, tenant=factory.SelfAttribute("..tenant"))


class LeaderboardFactory(DjangoModelFactory):
    class Meta:
        model = Leaderboard

    tenant = factory.SubFactory(TenantFactory)
    user = factory.SubFactory(StudentFactory, tenant=factory.SelfAttribute("..tenant"))
    points = 0
    solves = 0

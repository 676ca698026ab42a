from challenges.factories import ProjectFactory
from challenges.models import Project
from scoring.factories import SubmissionFactory
from scoring.models import Submission


def test_for_tenant_returns_only_that_tenants_rows(tenant, other_tenant):
    mine = ProjectFactory(tenant=tenant)
    ProjectFactory(tenant=other_tenant)

    assert list(Project.objects.for_tenant(tenant)) == [mine]
    assert list(Project.objects.for_tenant(tenant.pk)) == [mine]


def test_for_tenant_of_none_is_empty_not_everything(tenant):
    ProjectFactory(tenant=tenant)

    assert Project.objects.for_tenant(None).count() == 0


def test_queryset_methods_chain_after_for_tenant(tenant, other_tenant):
    pending = SubmissionFactory(tenant=tenant)
    SubmissionFactory(tenant=tenant, approved=True)
    SubmissionFactory(tenant=other_tenant)
    ProjectFactory(tenant=tenant, is_published=False)

    assert list(Submission.objects.for_tenant(tenant).pending()) == [pending]
    assert Project.objects.for_tenant(tenant).published().count() == 2  # the submissions' own challenges


def test_factories_keep_related_rows_inside_one_tenant(tenant):
    submission = SubmissionFactory(tenant=tenant)

    assert submission.user.tenant == tenant
    assert submission.project.tenant == tenant

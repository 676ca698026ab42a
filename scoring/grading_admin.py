"""The grading queue: an instructor's main screen, and the form a write-up is graded with."""

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.text import Truncator
from django.utils.timesince import timesince
from import_export.admin import ExportMixin
from import_export.formats.base_formats import CSV

from vulhub.lib.admin import CappedCountPaginator, TenantScopedAdminMixin

from . import services
from .admin_filters import TenantChallengeFilter
from .models import Submission
from .resources import SubmissionExportResource

# the student's other attempts at the challenge listed on a submission's page, newest first
OTHER_ATTEMPTS = 50


GRADES = [(Submission.Status.APPROVED, "Approved"), (Submission.Status.REJECTED, "Rejected")]


class GradeForm(forms.ModelForm):
    status = forms.ChoiceField(choices=GRADES)
    score = forms.IntegerField(
        min_value=0,
        max_value=100,
        help_text="0 to 100; points = challenge points × score / 100. The student's best grade counts: "
        "approving a better grade than an earlier approved one supersedes it.",
    )

    # the write-up's edit count when the grader opened it: a grade is refused if the student
    # edited it since (services.submission_grade's seen_edit_count)
    seen_edit_count = forms.IntegerField(required=False, min_value=0, widget=forms.HiddenInput)

    class Meta:
        model = Submission
        fields = ["status", "score", "feedback"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["seen_edit_count"].initial = self.instance.edit_count
        if self.instance.status == Submission.Status.SUPERSEDED:
            # shown as it is; saving it needs a grade (services.submission_grade)
            self.fields["status"].choices = [(self.instance.status, self.instance.get_status_display()), *GRADES]

    def clean(self):
        cleaned = super().clean()
        seen = cleaned.get("seen_edit_count")
        if seen is not None and seen != self.instance.edit_count:
            # shown again with the new text and its count: the next save grades what was read
            self.data = self.data.copy()
            self.data[self.add_prefix("seen_edit_count")] = self.instance.edit_count
            raise forms.ValidationError(
                "The student edited this write-up after you opened it. Read the text below again, then grade it."
            )
        status, score = cleaned.get("status"), cleaned.get("score")
        if status == Submission.Status.SUPERSEDED:
            self.add_error("status", "A superseded submission changes only by a new grade: approve or reject it.")
        elif status == Submission.Status.APPROVED and score is not None:
            refusal = services.approval_refusal(submission=self.instance, score=score)
            if refusal:
                self.add_error("status", refusal)
        return cleaned


@admin.register(Submission)
class SubmissionAdmin(TenantScopedAdminMixin, ExportMixin, admin.ModelAdmin):
    """The grading queue: opens on pending submissions, oldest first.

    A submission's page shows the student's other attempts at the same challenge
    (templates/admin/scoring/submission/change_form.html), so a grader sees earlier
    grades and feedback before grading a resubmission.
    """

    form = GradeForm
    change_form_template = "admin/scoring/submission/change_form.html"
    list_display = ["submitted_at", "student", "project", "age", "kind", "status", "score", "excerpt"]
    list_filter = ["status", "kind", ("project", TenantChallengeFilter)]
    list_select_related = ["user", "project"]
    search_fields = ["user__email", "user__last_name", "project__name"]
    ordering = ["submitted_at"]
    readonly_fields = [
        "student",
        "project",
        "kind",
        "submitted_at",
        "answer_shown",
        "link",
        "edited",
        "points_awarded",
        "graded_by",
        "graded_at",
    ]
    fields = [
        "student",
        "project",
        "kind",
        "submitted_at",
        "answer_shown",
        "link",
        "edited",
        "seen_edit_count",
        "status",
        "score",
        "feedback",
        "points_awarded",
        "graded_by",
        "graded_at",
    ]
    actions = ["approve_full", "reject"]
    paginator = CappedCountPaginator
    show_full_result_count = False
    list_per_page = 50
    resource_classes = [SubmissionExportResource]
    export_formats = [CSV]

    def changelist_view(self, request, extra_context=None):
        # The queue opens on what needs grading; any explicit filter (or "all") wins.
        if not request.GET and request.method == "GET":
            return HttpResponseRedirect(f"{request.path}?status__exact=PENDING")
        return super().changelist_view(request, extra_context)

    def has_add_permission(self, request):
        return False  # students submit on the site

    def has_delete_permission(self, request, obj=None):
        return request.user.is_superuser

    @admin.display(description="student", ordering="user__last_name")
    def student(self, obj):
        return obj.user.get_full_name()

    @admin.display(description="waiting for")
    def age(self, obj):
        return timesince(obj.submitted_at, timezone.now())

    @admin.display(description="write-up")
    def excerpt(self, obj):
        if obj.kind == Submission.Kind.FLAG:
            return "(flag)"
        return Truncator(obj.answer).chars(80)

    @admin.display(description="edited by the student")
    def edited(self, obj):
        if not obj.edit_count:
            return "no"
        times = "once" if obj.edit_count == 1 else f"{obj.edit_count} times"
        return f"{times}, last on {date_format(timezone.localtime(obj.edited_at), 'DATETIME_FORMAT')}"

    @admin.display(description="answer")
    def answer_shown(self, obj):
        return "(a flag: not shown)" if obj.kind == Submission.Kind.FLAG else obj.answer

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if obj is not None:
            context["other_attempts"] = list(
                Submission.objects.for_tenant(obj.tenant_id)
                .filter(user_id=obj.user_id, project_id=obj.project_id)
                .exclude(pk=obj.pk)
                .select_related("graded_by")
                .order_by("-submitted_at")[:OTHER_ATTEMPTS]
            )
            context["other_attempts_limit"] = OTHER_ATTEMPTS
        return super().render_change_form(request, context, add=add, change=change, form_url=form_url, obj=obj)

    def save_model(self, request, obj, form, change):
        try:
            services.submission_grade(
                submission=obj,
                status=form.cleaned_data["status"],
                score=form.cleaned_data["score"],
                feedback=form.cleaned_data.get("feedback", ""),
                grader=request.user,
                seen_edit_count=form.cleaned_data.get("seen_edit_count"),
            )
        except services.ScoringError as refusal:  # not theirs to grade; or edited in the instant since clean()
            raise PermissionDenied(str(refusal)) from refusal

    def _grade_selection(self, request, queryset, status, score):
        done, refused = 0, []
        for submission in queryset.select_related("project"):
            try:
                services.submission_grade(submission=submission, status=status, score=score, grader=request.user)
                done += 1
            except services.ScoringError as refusal:
                refused.append(f"submission {submission.pk}: {refusal}")
        if done:
            messages.success(request, f"{done} submission(s) graded.")
        for line in refused:
            messages.warning(request, line)

    @admin.action(description="Approve with full score", permissions=["change"])
    def approve_full(self, request, queryset):
        self._grade_selection(request, queryset, Submission.Status.APPROVED, 100)

    @admin.action(description="Reject", permissions=["change"])
    def reject(self, request, queryset):
        self._grade_selection(request, queryset, Submission.Status.REJECTED, 0)

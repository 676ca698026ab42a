"""The grading queue: an instructor's main screen, and the form a write-up is graded with.

The queue (/admin/scoring/submission/, opened on ?status__exact=PENDING) lists what waits,
oldest first, each row with a "Grade" link. The grade form shows the write-up and the
student's other attempts beside the grade: a decision nobody pre-selected, a score and
the points it gives (static/js/admin-grading.js shows them live; the help text says it
without script), and "Save and grade next", which saves and opens the next pending
submission of the queue the grader came from (its filters kept), or goes back to the
queue once none is left.
"""

import copy

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.exceptions import DisallowedModelAdminLookup, DisallowedModelAdminToField
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.templatetags.admin_urls import add_preserved_filters
from django.contrib.admin.views.main import ChangeList
from django.core.exceptions import FieldError, PermissionDenied, ValidationError
from django.core.validators import URLValidator
from django.db.models import Q
from django.http import HttpResponseRedirect, QueryDict
from django.urls import reverse
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.html import format_html
from django.utils.text import Truncator
from import_export.admin import ExportMixin
from import_export.formats.base_formats import CSV

from tenants.time_zone import zone_of
from vulhub.lib.admin import CappedCountPaginator, TenantScopedAdminMixin
from vulhub.lib.ages import waited

from . import services
from .admin_filters import TenantChallengeFilter
from .models import Submission
from .resources import SubmissionExportResource

# the student's other attempts at the challenge listed on a submission's page, newest first
OTHER_ATTEMPTS = 50

# the submit button that saves a grade and opens the next submission waiting in the queue
GRADE_NEXT = "_gradenext"

DECISIONS = [(Submission.Status.APPROVED, "Approve"), (Submission.Status.REJECTED, "Reject")]
ACCESS_KEYS = {Submission.Status.APPROVED: "a", Submission.Status.REJECTED: "r"}

# the queue's own parameters: not filters, so not kept when looking for the next submission
NOT_FILTERS = {"o", "p", "e", "all", "_popup", "_to_field", "_facets"}

GRADE_FIELDSET = "Your grade"


def points_text(points: int) -> str:
    return f"{points} point{'' if points == 1 else 's'}"


def score_help(project) -> str:
    """What a score is worth on this challenge, for the score's help text (read without script)."""
    full, half = services.points_for(project, 100), services.points_for(project, 50)
    if project.is_dynamic:
        worth = (
            f"This dynamic challenge is worth {points_text(full)} now; its value falls as more students solve it, "
            "and every solver's points follow. "
        )
    else:
        worth = f"This challenge is worth {points_text(full)}. "
    return (
        f"0 to 100: points = challenge points × score / 100. {worth}"
        f"Full score (100) gives {points_text(full)}; 50 gives {points_text(half)}; 0 gives none. "
        "The student's best grade counts: approving a better grade than an earlier approved one supersedes it."
    )


def points_preview(project, status, score) -> str:
    """What the chosen decision and score give (the live preview's text, computed here for the first render)."""
    if status == Submission.Status.REJECTED:
        return "Rejecting gives no points."
    try:
        score = int(score)
    except (TypeError, ValueError):
        return "Type a score from 0 to 100 to see the points it gives."
    if not 0 <= score <= 100:
        return "A score is a whole number from 0 to 100."
    now = " at the challenge's value now" if project.is_dynamic else ""
    verb = "Approving with" if status == Submission.Status.APPROVED else "If approved,"
    return f"{verb} {score}/100 gives {points_text(services.points_for(project, score))}{now}."


class DecisionRadios(forms.RadioSelect):
    """Approve / Reject as radio buttons, reached first from the keyboard.

    The chosen one (or the first, when none is) has autofocus: the page opens with the
    decision in hand. Each has an access key (a / r).
    """

    def optgroups(self, name, value, attrs=None):
        groups = super().optgroups(name, value, attrs)
        options = [option for _, group, _ in groups for option in group]
        focused = next((o for o in options if o["selected"]), options[0] if options else None)
        for option in options:
            key = ACCESS_KEYS.get(option["value"])
            if key:
                option["attrs"]["accesskey"] = key
            if option is focused:
                option["attrs"]["autofocus"] = True
        return groups


class GradeForm(forms.ModelForm):
    required_css_class = "required"  # the labels the template renders by hand say which fields are
    # No initial decision: a pending submission shows none chosen (its status, PENDING, is
    # no choice), and saving without one is a form error.
    status = forms.ChoiceField(
        label="Decision",
        choices=DECISIONS,
        widget=DecisionRadios,
        error_messages={
            "required": "Choose a decision: approve or reject this submission.",
            "invalid_choice": "Choose a decision: approve or reject this submission.",
        },
    )
    score = forms.IntegerField(
        label="Score",
        min_value=0,
        max_value=100,
        widget=forms.NumberInput(attrs={"inputmode": "numeric", "class": "grade-score"}),
        help_text="0 to 100; points = challenge points × score / 100. The student's best grade counts: "
        "approving a better grade than an earlier approved one supersedes it.",
        error_messages={"required": "Give a score from 0 to 100 (0 when rejecting is fine)."},
    )

    # the write-up's edit count when the grader opened it: a grade is refused if the student
    # edited it since (services.submission_grade's seen_edit_count)
    seen_edit_count = forms.IntegerField(required=False, min_value=0, widget=forms.HiddenInput)

    class Meta:
        model = Submission
        fields = ["status", "score", "feedback"]
        help_texts = {"feedback": "The student reads it with the grade."}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["seen_edit_count"].initial = self.instance.edit_count
        if self.instance.pk is not None:
            self.fields["score"].help_text = score_help(self.instance.project)
        if self.instance.status == Submission.Status.SUPERSEDED:
            # shown as it is; saving it needs a grade (services.submission_grade)
            self.fields["status"].choices = [(self.instance.status, self.instance.get_status_display()), *DECISIONS]

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


class QueueLookup(ChangeList):
    """The queue's filters and search applied, without fetching a page of rows (for "Save and grade next")."""

    def get_results(self, request):
        self.result_list, self.result_count, self.full_result_count = [], 0, None


@admin.register(Submission)
class SubmissionAdmin(TenantScopedAdminMixin, ExportMixin, admin.ModelAdmin):
    """The grading queue: opens on pending submissions, oldest first.

    A submission's page shows the write-up and the student's other attempts at the same
    challenge (templates/admin/scoring/submission/change_form.html) beside the grade, so
    a grader sees earlier grades and feedback before grading a resubmission.
    """

    form = GradeForm
    change_form_template = "admin/scoring/submission/change_form.html"
    # django-import-export's export button is added around it (ExportMixin extends this one)
    change_list_template = "admin/scoring/submission/change_list.html"
    # every status: the time first (the column ?o=1 sorts), then the row's link
    list_display = ["submitted_at", "grade", "student", "project", "kind", "status", "score", "excerpt"]
    # the pending queue: what a grader needs to pick the next one, narrow enough for 1366 px
    pending_list_display = ["grade", "student", "project", "age", "excerpt"]
    list_display_links = ["grade"]
    list_filter = ["status", "kind", ("project", TenantChallengeFilter)]
    list_select_related = ["user", "project"]
    search_fields = ["user__email", "user__last_name", "project__name"]
    ordering = ["submitted_at", "pk"]
    readonly_fields = [
        "student",
        "project",
        "kind",
        "submitted_at",
        "answer_shown",
        "link_shown",
        "edited",
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

    def get_export_resource_kwargs(self, request, **kwargs):
        return {"zone": zone_of(getattr(request, "tenant", None))}  # times in the class's zone

    def changelist_view(self, request, extra_context=None):
        # The queue opens on what needs grading; any explicit filter (or "all") wins.
        if not request.GET and request.method == "GET":
            return HttpResponseRedirect(f"{request.path}?status__exact=PENDING")
        pending = self._is_pending_queue(request)
        extra_context = {
            "title": "Grading queue" if pending else "Submissions",
            **(extra_context or {}),
            "is_pending_queue": pending,
        }
        return super().changelist_view(request, extra_context)

    @staticmethod
    def _is_pending_queue(request) -> bool:
        return request.GET.get("status__exact") == Submission.Status.PENDING

    def get_list_display(self, request):
        return self.pending_list_display if self._is_pending_queue(request) else self.list_display

    def get_changelist(self, request, **kwargs):
        return QueueLookup if getattr(request, "_grading_queue_lookup", False) else super().get_changelist(request)

    def get_fieldsets(self, request, obj=None):
        writeup = ["student", "project", "kind", "submitted_at", "edited", "answer_shown", "link_shown"]
        fieldsets = [("Submission", {"fields": writeup})]
        if obj is not None and obj.status != Submission.Status.PENDING:
            fieldsets.append(("Current grade", {"fields": ["points_awarded", "graded_by", "graded_at"]}))
        # rendered by hand in the template, beside the write-up
        fieldsets.append((GRADE_FIELDSET, {"fields": ["seen_edit_count", "status", "score", "feedback"]}))
        return fieldsets

    def get_queryset(self, request):
        # the student and the challenge name a submission ("Ann Student’s write-up for Memory Lane")
        return super().get_queryset(request).select_related("user", "project")

    def has_add_permission(self, request):
        return False  # students submit on the site

    def has_delete_permission(self, request, obj=None):
        return request.user.is_superuser

    # --- the queue's columns --------------------------------------------------------------

    @admin.display(description="grade")
    def grade(self, obj):
        # the row's link (list_display_links): its text says what it opens to a screen reader too
        verb = "Grade" if obj.status == Submission.Status.PENDING else "Open"
        return format_html(
            '{}<span class="visually-hidden"> {}’s {} for {}</span>',
            verb,
            obj.user.get_full_name() or obj.user.email,
            obj.get_kind_display().lower(),
            obj.project.name,
        )

    @admin.display(description="student", ordering="user__last_name")
    def student(self, obj):
        return obj.user.get_full_name()

    @admin.display(description="waiting for", ordering="submitted_at")
    def age(self, obj):
        return waited(obj.submitted_at, timezone.now())

    @admin.display(description="write-up")
    def excerpt(self, obj):
        if obj.kind == Submission.Kind.FLAG:
            return "(flag)"
        return Truncator(obj.answer).chars(80)

    # --- the grade form's read-only fields ------------------------------------------------

    @admin.display(description="edited by the student")
    def edited(self, obj):
        if not obj.edit_count:
            return "no"
        times = "once" if obj.edit_count == 1 else f"{obj.edit_count} times"
        return f"{times}, last on {date_format(timezone.localtime(obj.edited_at), 'DATETIME_FORMAT')}"

    @admin.display(description="write-up")
    def answer_shown(self, obj):
        # plain text: the admin escapes it and keeps its line breaks (linebreaksbr)
        return "(a flag: not shown)" if obj.kind == Submission.Kind.FLAG else obj.answer

    @admin.display(description="link")
    def link_shown(self, obj):
        if not obj.link:
            return "—"
        try:
            URLValidator(schemes=["http", "https"])(obj.link)
        except ValidationError:
            return obj.link  # shown as text, never a link a click would run
        return format_html(
            '<a href="{}" rel="noopener noreferrer nofollow" target="_blank">{}'
            '<span class="visually-hidden"> (opens in a new tab)</span></a>',
            obj.link,
            obj.link,
        )

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
            context["grade_fieldset"] = GRADE_FIELDSET
            form = context["adminform"].form
            if "status" in form.fields:  # not for a viewer without the right to grade: Django shows it read-only
                pending = obj.status == Submission.Status.PENDING
                context["title"] = f"{'Grade' if pending else 'Regrade'} a {obj.get_kind_display().lower()}"
                context["grade_form"] = form
                context["challenge_points"] = obj.project.points
                context["challenge_is_dynamic"] = obj.project.is_dynamic
                context["points_preview"] = points_preview(obj.project, form["status"].value(), form["score"].value())
        return super().render_change_form(request, context, add=add, change=change, form_url=form_url, obj=obj)

    # --- saving a grade, and the next one -------------------------------------------------

    def save_model(self, request, obj, form, change):
        try:
            graded = services.submission_grade(
                submission=obj,
                status=form.cleaned_data["status"],
                score=form.cleaned_data["score"],
                feedback=form.cleaned_data.get("feedback", ""),
                grader=request.user,
                seen_edit_count=form.cleaned_data.get("seen_edit_count"),
            )
        except services.ScoringError as refusal:  # not theirs to grade; or edited in the instant since clean()
            raise PermissionDenied(str(refusal)) from refusal
        # what the service settled (a dynamic challenge's value may have moved), for the message
        obj.points_awarded, obj.graded_by, obj.graded_at = graded.points_awarded, graded.graded_by, graded.graded_at

    def response_change(self, request, obj):
        if GRADE_NEXT in request.POST:
            return self._grade_next(request, obj)
        return super().response_change(request, obj)

    def _grade_next(self, request, obj):
        decision = "approved" if obj.status == Submission.Status.APPROVED else "rejected"
        self.message_user(
            request,
            f"Graded {obj.user.get_full_name() or obj.user.email}’s {obj.get_kind_display().lower()} for "
            f"{obj.project.name}: {decision}, {obj.score}/100, {points_text(obj.points_awarded)}.",
            messages.SUCCESS,
        )
        preserved = {"preserved_filters": self.get_preserved_filters(request), "opts": self.opts}
        following = self.next_in_queue(request, obj)
        if following is not None:
            url = reverse(
                f"admin:{self.opts.app_label}_{self.opts.model_name}_change",
                args=[following],
                current_app=self.admin_site.name,
            )
            return HttpResponseRedirect(add_preserved_filters(preserved, url))
        filtered = bool(self._queue_filters(request).keys() - {"status__exact"})
        self.message_user(
            request,
            "All caught up: nothing else waits for grading in this list."
            if filtered
            else "All caught up: nothing else waits for grading.",
            messages.SUCCESS,
        )
        url = reverse(
            f"admin:{self.opts.app_label}_{self.opts.model_name}_changelist", current_app=self.admin_site.name
        )
        if not preserved["preserved_filters"]:
            return HttpResponseRedirect(f"{url}?status__exact={Submission.Status.PENDING}")
        return HttpResponseRedirect(add_preserved_filters(preserved, url))

    @staticmethod
    def _queue_filters(request) -> QueryDict:
        """The filters and search of the queue the grader came from (its _changelist_filters)."""
        return QueryDict(request.GET.get("_changelist_filters", ""))

    def next_in_queue(self, request, current) -> int | None:
        """The id of the pending submission after `current` in the grader's queue; else the oldest one left.

        The queue is the changelist the grader came from, with its filters and search
        (a challenge, a kind, a student searched for) but on the pending submissions
        whatever its status filter; always this tenant's (get_queryset). None when no
        other submission waits.
        """
        params = QueryDict(mutable=True)
        for name, values in self._queue_filters(request).lists():
            if name not in NOT_FILTERS and not name.startswith("status"):
                params.setlist(name, values)
        lookup = copy.copy(request)
        lookup.GET = params
        lookup._grading_queue_lookup = True
        try:
            queue = self.get_changelist_instance(lookup).queryset
        except (
            IncorrectLookupParameters,
            DisallowedModelAdminLookup,
            DisallowedModelAdminToField,
            FieldError,
            ValidationError,
            ValueError,
        ):
            queue = self.get_queryset(request)  # filters that no longer apply: the whole queue
        pending = queue.filter(status=Submission.Status.PENDING).exclude(pk=current.pk).order_by("submitted_at", "pk")
        after = Q(submitted_at__gt=current.submitted_at) | Q(submitted_at=current.submitted_at, pk__gt=current.pk)
        pk = pending.filter(after).values_list("pk", flat=True).first() or pending.values_list("pk", flat=True).first()
        return pk

    # --- the queue's actions --------------------------------------------------------------

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

"""The challenge admin: authoring that prevents mistakes.

Besides Django's form, the page offers what catches an author's slips before students
meet them: the flag typed twice (or shown), a "Test a flag" box that checks a candidate
against the stored digest (test_flag_view: the answer is only "matches" or "does not"),
a Published switch that goes through project_publish/project_unpublish like the actions,
the class's categories to choose from, and a preview of the description as students see
it (preview_view). Both views answer JSON to static/js/admin-authoring.js; the flag test
answers a page of its own to a browser without JavaScript.
"""

import logging

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.cache import cache
from django.core.exceptions import PermissionDenied
from django.db import models
from django.http import Http404, HttpResponseNotAllowed, JsonResponse
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from tenants.time_zone import ADMIN_DATETIME
from vulhub.lib.admin import TenantScopedAdminMixin, request_tenant_id

from . import files, prerequisites
from .file_admin import ChallengeFileInline
from .hint_admin import HintInline
from .markdown import render_markdown
from .models import Project
from .services import project_publish, project_save, project_unpublish

# The category select's last choice: it reveals the "new category" box (admin-authoring.js).
NEW_CATEGORY = "__new__"
CATEGORY_MAX_LENGTH = Project._meta.get_field("category").max_length
FLAG_MAX_LENGTH = 500  # as a student's answer is kept (scoring.services)
# A description longer than this is not previewed (the request's own limit is larger).
PREVIEW_MAX_CHARS = 100_000
# Flag tests per staff member and window: enough to try variants by hand, not to guess one.
FLAG_TEST_LIMIT = 30
FLAG_TEST_WINDOW_SECONDS = 10 * 60

logger = logging.getLogger(__name__)

SCORING_HELP = (
    "Fixed points: every solver earns the points above. Dynamic (CTFd's formulas): the value starts at the initial "
    "value and falls as students solve the challenge, down to the minimum, and every solver's points follow the "
    "current value (a partial grade gets its share). With n solvers, s = n - 1: logarithmic: "
    "value = initial + (minimum - initial) / decay² × s², rounded up, so it reaches the minimum at the decay-th "
    "solver after the first; linear: value = initial - decay × s. Never below the minimum."
)


class SwitchInput(forms.CheckboxInput):
    """A checkbox that tells the server it was on the page.

    An unticked box sends nothing, exactly like a form without it (a script, an older page):
    the hidden marker beside it tells "unticked" from "not asked", so a post that never
    showed the switch keeps the challenge as it is instead of hiding it.
    """

    def render(self, name, value, attrs=None, renderer=None):
        marker = format_html('<input type="hidden" name="{}" value="1">', marker_name(name))
        return super().render(name, value, attrs, renderer) + marker


def marker_name(name: str) -> str:
    return f"{name}-shown"


def tenant_categories(tenant_id) -> list[str]:
    """The categories the class's challenges use, each once, in alphabetical order."""
    # order_by(): the model's ordering (name) would join the DISTINCT and repeat categories
    names = Project.objects.for_tenant(tenant_id).order_by().values_list("category", flat=True).distinct()
    return sorted(names, key=str.casefold)


class ProjectForm(forms.ModelForm):
    published = forms.BooleanField(label="Published: students see it", required=False, widget=SwitchInput)
    category = forms.CharField(
        label="Category",
        required=False,  # or a new one: checked in clean()
        widget=forms.Select,
        help_text="One of the categories your class already has, so the catalogue groups challenges together.",
    )
    new_category = forms.CharField(
        label="or a new category",
        required=False,
        max_length=CATEGORY_MAX_LENGTH,
        help_text="Type a category your class does not have yet; it is used instead of the choice above.",
    )
    new_flag = forms.CharField(
        label="Flag",
        required=False,
        max_length=FLAG_MAX_LENGTH,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off", "spellcheck": "false"}),
        help_text="Set or replace the flag; leave empty to keep the current one. The stored flag is never shown. "
        "Students' answers are compared exactly (letters' case counts), spaces around them ignored.",
    )
    new_flag_again = forms.CharField(
        label="Type the flag again",
        required=False,
        max_length=FLAG_MAX_LENGTH,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off", "spellcheck": "false"}),
        help_text="The same flag once more: a typo in either box is caught before a student meets it.",
    )
    remove_flag = forms.BooleanField(label="Remove the flag (graded write-ups instead)", required=False)
    requires = forms.ModelMultipleChoiceField(
        label="Requires",
        queryset=Project.objects.none(),  # the tenant's other challenges: set in __init__
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="Challenges a student must solve (full score) before this one opens to them. Until then they see "
        "it as locked, with what unlocks it. Unpublished ones lock nothing.",
        error_messages={"invalid_choice": "Choose other challenges of this class: %(value)s is not one of them."},
    )

    # the tenant whose challenges `requires` offers (ProjectAdmin.get_form sets it per request)
    choices_tenant_id: int | None = None

    class Meta:
        model = Project
        fields = [
            "tenant",  # superusers
            "name",
            "slug",
            "category",
            "difficulty",
            "description",
            "scoring",
            "points",
            "initial_points",
            "minimum_points",
            "decay",
            "decay_function",
            "opens_at",
            "closes_at",
        ]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        tenant_id = self.choices_tenant_id or self.instance.tenant_id
        if "published" in self.fields:
            self.initial.setdefault("published", self.instance.is_published)
            self.fields["published"].help_text = (
                "Untick to hide it from students; their submissions and points stay."
                if self.instance.pk
                else "A new challenge starts hidden from students. Tick this when it is ready, or publish it later."
            )
        if "category" in self.fields:
            self.categories = tenant_categories(tenant_id)
            current = self.instance.category
            if current and current not in self.categories:
                self.categories.append(current)
            self.fields["category"].widget.choices = [
                ("", "Choose a category…"),
                *((name, name) for name in self.categories),
                (NEW_CATEGORY, "Add a new category…"),
            ]
            if not self.instance.pk and not self.categories:
                self.initial.setdefault("category", NEW_CATEGORY)  # nothing to choose yet: the box is the way
        if "requires" in self.fields:
            others = Project.objects.for_tenant(tenant_id).order_by("name")
            if self.instance.pk:
                others = others.exclude(pk=self.instance.pk)
                self.initial.setdefault("requires", prerequisites.required_ids(self.instance))
            self.fields["requires"].queryset = others
        # a form that leaves these out (an older form, a script) keeps what the challenge has
        for name in ("scoring", "decay_function"):
            if name in self.fields:
                self.fields[name].required = False

    def clean_scoring(self):
        return self.cleaned_data.get("scoring") or self.instance.scoring or Project.Scoring.STATIC

    def clean_decay_function(self):
        return self.cleaned_data.get("decay_function") or self.instance.decay_function or Project.Decay.LOGARITHMIC

    def clean_published(self):
        if marker_name(self.add_prefix("published")) not in self.data:
            return self.instance.is_published  # the switch was not on the page that sent this: no change
        return self.cleaned_data["published"]

    def clean(self):
        cleaned = super().clean()
        if "category" in self.fields:
            self._clean_category(cleaned)
        self._clean_flag(cleaned)
        required = cleaned.get("requires")
        if required and self.instance.pk:  # a new challenge is required by none: it closes no cycle
            tenant_id = self.instance.tenant_id
            prerequisites.lock_tenant(tenant_id)  # held to commit: no concurrent edit closes a cycle
            cycle = prerequisites.find_cycle(
                tenant_id=tenant_id, project_id=self.instance.pk, required=[p.pk for p in required]
            )
            if cycle:
                names = dict(Project.objects.for_tenant(tenant_id).filter(pk__in=cycle).values_list("pk", "name"))
                names[self.instance.pk] = cleaned.get("name") or self.instance.name
                self.add_error(
                    "requires",
                    f"These prerequisites would make a cycle: {prerequisites.describe_cycle(cycle, names)}. "
                    "No student could ever open them. Remove one of them.",
                )
        return cleaned

    def _clean_category(self, cleaned) -> None:
        """The new category typed, else the one chosen: trimmed, within the column, spelt as the class spells it."""
        chosen = (cleaned.get("category") or "").strip()
        typed = (cleaned.get("new_category") or "").strip()
        if "new_category" in self.errors:
            return  # its own error (too long, a NUL) says what to do
        if typed:
            name = typed
        elif chosen and chosen != NEW_CATEGORY:
            name = chosen
        elif chosen == NEW_CATEGORY:
            self.add_error("new_category", "Type the name of the new category.")
            return
        else:
            self.add_error("category", "Choose a category, or add a new one.")
            return
        if len(name) > CATEGORY_MAX_LENGTH:
            self.add_error(
                "new_category" if typed else "category",
                f"A category has at most {CATEGORY_MAX_LENGTH} characters (this one has {len(name)}).",
            )
            return
        # "web security" when the class has "Web Security": one category, not two in the catalogue
        known = {existing.casefold(): existing for existing in getattr(self, "categories", [])}
        cleaned["category"] = known.get(name.casefold(), name)

    def _clean_flag(self, cleaned) -> None:
        flag = cleaned.get("new_flag") or ""
        again = cleaned.get("new_flag_again") or ""
        if "new_flag" in self.errors or "new_flag_again" in self.errors:
            return
        if flag and cleaned.get("remove_flag"):
            self.add_error("remove_flag", "Either set a new flag or remove the flag, not both.")
        # a post without the second box (a script, an older page) is not asked for it
        if self.add_prefix("new_flag_again") in self.data and flag != again:
            self.add_error(
                "new_flag_again",
                "The two flags differ: type the same flag in both boxes."
                if flag
                else "Type the flag in the first box too, or empty this one.",
            )


@admin.register(Project)
class ProjectAdmin(TenantScopedAdminMixin, admin.ModelAdmin):
    form = ProjectForm
    inlines = [ChallengeFileInline, HintInline]
    list_display = [
        "name",
        "category",
        "difficulty",
        "points",
        "scoring",
        "opens_at",
        "closes_at",
        "is_published",
        "has_flag",
    ]
    list_filter = ["is_published", "difficulty", "scoring", "category"]
    search_fields = ["name", "slug", "category"]
    prepopulated_fields = {"slug": ("name",)}
    formfield_overrides = {models.DateTimeField: ADMIN_DATETIME}
    actions = ["publish", "unpublish"]
    ordering = ["name"]

    @admin.display(boolean=True, description="flag")
    def has_flag(self, obj):
        return obj.has_flag

    def get_fieldsets(self, request, obj=None):
        scoring = ["scoring", "points", "initial_points", "minimum_points", "decay", "decay_function"]
        if obj is not None and obj.is_dynamic:
            scoring.insert(1, "current_value")
        basics = ["name", "slug", "category", "new_category", "difficulty", "description"]
        answer = ["new_flag", "new_flag_again", "remove_flag"]
        if obj is not None:
            basics.append("description_shown")
            if obj.has_flag:
                answer.append("flag_test")
        return [
            ("Students", {"fields": ["published"]}),
            ("Basics", {"fields": basics}),
            (
                "Answer",
                {
                    "fields": answer,
                    "description": "A flag is checked at once; without one, students send write-ups you grade.",
                },
            ),
            ("Scoring", {"fields": scoring, "description": SCORING_HELP}),
            (
                "Time window",
                {
                    "fields": ["opens_at", "closes_at"],
                    "description": "In the class's time zone. Before it opens, students do not see the challenge; "
                    "after it closes, they see it but cannot answer. Empty: always open.",
                },
            ),
            ("Prerequisites", {"fields": ["requires"]}),
        ]

    def get_readonly_fields(self, request, obj=None):
        shown = ["current_value", "description_shown", "flag_test"]
        # a dynamic challenge's points are its current value, kept by VulHub as students solve it
        return [*shown, "points"] if obj is not None and obj.is_dynamic else shown

    @admin.display(description="Value now")
    def current_value(self, obj):
        if obj is None or not obj.is_dynamic:
            return "—"
        return f"{obj.points} points: what a full solve earns now; it falls as more students solve it."

    @admin.display(description="As students see it")
    def description_shown(self, obj):
        """The saved description, rendered as on the challenge's page (the Preview button shows unsaved edits)."""
        if obj is None or not obj.description.strip():
            return "—"
        return format_html('<div class="authoring-rendered">{}</div>', render_markdown(obj.description))

    @admin.display(description="Test a flag")
    def flag_test(self, obj):
        """A box and a button of the form "flag-test-form" (change_form.html), outside the challenge's form.

        Enter in the box tests the flag; Enter elsewhere still saves the challenge.
        """
        if obj is None or not obj.has_flag:
            return "—"
        return format_html(
            '<div class="flag-test">'
            '<input type="text" name="candidate" id="id_flag_test" form="flag-test-form" class="vTextField" '
            'maxlength="{}" autocomplete="off" spellcheck="false" aria-label="Test a flag" '
            'aria-describedby="flag-test-help">'
            '<button type="submit" form="flag-test-form" class="button" id="flag-test-button">Test</button>'
            "</div>"
            '<p class="flag-test-result" id="flag-test-result" role="status" aria-live="polite"></p>'
            '<div class="help" id="flag-test-help">Checks a candidate against the stored flag the way a '
            "student's answer is checked, without showing the flag. Nothing is saved: your unsaved edits stay "
            "on the page.</div>",
            FLAG_MAX_LENGTH,
        )

    # --- Saving -----------------------------------------------------------------------------

    def get_form(self, request, obj=None, **kwargs):
        form = super().get_form(request, obj, **kwargs)
        form.choices_tenant_id = request_tenant_id(request)
        return form

    def delete_model(self, request, obj):
        files.delete_objects_of_projects_on_commit([obj])  # the rows go with the challenge; the stored files too
        super().delete_model(request, obj)

    def delete_queryset(self, request, queryset):
        files.delete_objects_of_projects_on_commit(queryset)
        super().delete_queryset(request, queryset)

    def save_model(self, request, obj, form, change):
        if not change:
            obj.tenant_id = request_tenant_id(request)
        project_save(
            project=obj, flag=form.cleaned_data.get("new_flag"), remove_flag=form.cleaned_data.get("remove_flag")
        )
        # the switch publishes as the actions do: audited, with its event, the catalogue refreshed
        wanted = form.cleaned_data.get("published", obj.is_published)
        if wanted and not obj.is_published:
            project_publish(project=obj, actor=request.user)
        elif not wanted and obj.is_published:
            project_unpublish(project=obj, actor=request.user)

    def response_add(self, request, obj, post_url_continue=None):
        response = super().response_add(request, obj, post_url_continue)
        self._warn_if_hidden(request, obj)
        return response

    def response_change(self, request, obj):
        response = super().response_change(request, obj)
        self._warn_if_hidden(request, obj)
        return response

    def _warn_if_hidden(self, request, obj) -> None:
        if not obj.is_published:
            messages.warning(request, f"“{obj.name}” is hidden from students until you publish it.")

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        if "requires" in form.cleaned_data:
            prerequisites.prerequisites_set(project=form.instance, required=form.cleaned_data["requires"])

    def save_formset(self, request, form, formset, change):
        """Files, hints and prerequisites belong to the challenge's tenant."""
        for inline_form in formset.forms:
            if hasattr(inline_form, "instance") and hasattr(inline_form.instance, "tenant_id"):
                inline_form.instance.tenant_id = form.instance.tenant_id
        super().save_formset(request, form, formset, change)

    @admin.action(description="Publish the selected challenges", permissions=["change"])
    def publish(self, request, queryset):
        for project in queryset:
            project_publish(project=project, actor=request.user)
        messages.success(request, f"{queryset.count()} challenge(s) published.")

    @admin.action(description="Unpublish the selected challenges", permissions=["change"])
    def unpublish(self, request, queryset):
        for project in queryset:
            project_unpublish(project=project, actor=request.user)
        messages.success(request, f"{queryset.count()} challenge(s) unpublished.")

    # --- The authoring views (JSON for admin-authoring.js) --------------------------------------

    def get_urls(self):
        prefix = f"{self.opts.app_label}_{self.opts.model_name}"
        view = self.admin_site.admin_view  # staff only, CSRF checked
        return [
            path("preview/", view(self.preview_view), name=f"{prefix}_preview"),
            path("<path:object_id>/test-flag/", view(self.test_flag_view), name=f"{prefix}_test_flag"),
            *super().get_urls(),
        ]

    def preview_view(self, request):
        """The posted description rendered as students see it: {"html": ...}."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not (self.has_change_permission(request) or self.has_add_permission(request)):
            raise PermissionDenied
        text = request.POST.get("description", "").replace("\x00", "")
        if len(text) > PREVIEW_MAX_CHARS:
            return JsonResponse(
                {"error": f"The description is too long to preview: at most {PREVIEW_MAX_CHARS:,} characters."},
                status=413,
            )
        return JsonResponse({"html": str(render_markdown(text))})

    def test_flag_view(self, request, object_id):
        """Whether a candidate matches the challenge's stored flag; nothing else is told, saved or logged."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        project = self.get_object(request, unquote(object_id))  # another class's: None, a 404
        if project is None:
            raise Http404
        if not self.has_change_permission(request, project):  # who may set the flag may test it
            raise PermissionDenied
        candidate = request.POST.get("candidate", "").strip()
        if not project.has_flag:
            return self._flag_test_answer(request, project, "This challenge has no flag: students send write-ups.", 400)
        if not candidate:
            return self._flag_test_answer(request, project, "Type a flag to test.", 400)
        if len(candidate) > FLAG_MAX_LENGTH:
            return self._flag_test_answer(
                request, project, f"A flag has at most {FLAG_MAX_LENGTH} characters: this one cannot match.", 400
            )
        allowed = flag_test_allowed(request.user.pk)
        if allowed is None:
            return self._flag_test_answer(
                request, project, "Flags cannot be tested right now: try again in a minute.", 503
            )
        if not allowed:
            return self._flag_test_answer(
                request, project, "Too many flags tested in the last minutes: wait a few minutes and try again.", 429
            )
        matches = project.check_flag(candidate)
        message = "Matches the stored flag." if matches else "Does not match the stored flag."
        return self._flag_test_answer(request, project, message, 200, matches=matches)

    def _flag_test_answer(self, request, project, message, status, *, matches=None):
        if "application/json" in request.headers.get("Accept", ""):
            return JsonResponse({"matches": matches, "message": message}, status=status)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "original": project,
            "title": "Test a flag",
            "subtitle": project.name,
            "message": message,
            "matches": matches,
            "change_url": reverse(f"admin:{self.opts.app_label}_{self.opts.model_name}_change", args=[project.pk]),
        }
        return TemplateResponse(request, "admin/challenges/project/flag_test.html", context, status=status)


def flag_test_allowed(user_id) -> bool | None:
    """Count one flag test of this staff member; False past FLAG_TEST_LIMIT in the window.

    None when the count cannot be kept (the cache is down): the test is refused then, as a
    limit that cannot count must not let guesses through.
    """
    key = f"admin-flag-tests:{user_id}"
    try:
        cache.add(key, 0, timeout=FLAG_TEST_WINDOW_SECONDS)
        try:
            count = cache.incr(key)
        except ValueError:  # expired between the two calls
            cache.set(key, 1, timeout=FLAG_TEST_WINDOW_SECONDS)
            count = 1
    except Exception:  # noqa: BLE001  (any cache backend's outage: Redis, the database cache)
        logger.warning("flag tests are refused: the cache that counts them is unavailable", exc_info=True)
        return None
    return count <= FLAG_TEST_LIMIT

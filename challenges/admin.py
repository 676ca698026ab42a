from django import forms
from django.contrib import admin, messages
from django.db import models

from tenants.time_zone import ADMIN_DATETIME
from vulhub.lib.admin import TenantScopedAdminMixin, request_tenant_id

from . import files, prerequisites
from .file_admin import ChallengeFileInline
from .hint_admin import HintInline
from .models import Project
from .services import project_publish, project_save, project_unpublish

SCORING_HELP = (
    "Fixed points: every solver earns the points above. Dynamic (CTFd's formulas): the value starts at the initial "
    "value and falls as students solve the challenge, down to the minimum, and every solver's points follow the "
    "current value (a partial grade gets its share). With n solvers, s = n - 1: logarithmic: "
    "value = initial + (minimum - initial) / decay² × s², rounded up, so it reaches the minimum at the decay-th "
    "solver after the first; linear: value = initial - decay × s. Never below the minimum."
)


class ProjectForm(forms.ModelForm):
    new_flag = forms.CharField(
        label="Flag",
        required=False,
        max_length=500,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
        help_text="Set or replace the flag; leave empty to keep the current one. The stored flag is never shown.",
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

    def clean(self):
        cleaned = super().clean()
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
        return [
            ("Basics", {"fields": ["name", "slug", "category", "difficulty", "description"]}),
            (
                "Answer",
                {
                    "fields": ["new_flag", "remove_flag"],
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
        # a dynamic challenge's points are its current value, kept by VulHub as students solve it
        return ["current_value", "points"] if obj is not None and obj.is_dynamic else ["current_value"]

    @admin.display(description="Value now")
    def current_value(self, obj):
        if obj is None or not obj.is_dynamic:
            return "—"
        return f"{obj.points} points: what a full solve earns now; it falls as more students solve it."

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

from django import forms
from django.contrib import admin, messages

from vulhub.lib.admin import TenantScopedAdminMixin, request_tenant_id

from .file_admin import ChallengeFileInline
from .hint_admin import HintInline
from .models import Project
from .services import project_publish, project_save, project_unpublish


class ProjectForm(forms.ModelForm):
    new_flag = forms.CharField(
        label="Flag",
        required=False,
        max_length=500,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
        help_text="Set or replace the flag; leave empty to keep the current one. The stored flag is never shown.",
    )
    remove_flag = forms.BooleanField(label="Remove the flag (graded write-ups instead)", required=False)

    class Meta:
        model = Project
        fields = ["tenant", "name", "slug", "category", "difficulty", "points", "description"]  # tenant: superusers


@admin.register(Project)
class ProjectAdmin(TenantScopedAdminMixin, admin.ModelAdmin):
    form = ProjectForm
    inlines = [ChallengeFileInline, HintInline]
    list_display = ["name", "category", "difficulty", "points", "is_published", "has_flag"]
    list_filter = ["is_published", "difficulty", "category"]
    search_fields = ["name", "slug", "category"]
    prepopulated_fields = {"slug": ("name",)}
    actions = ["publish", "unpublish"]
    ordering = ["name"]

    @admin.display(boolean=True, description="flag")
    def has_flag(self, obj):
        return obj.has_flag

    def save_model(self, request, obj, form, change):
        if not change:
            obj.tenant_id = request_tenant_id(request)
        project_save(
            project=obj, flag=form.cleaned_data.get("new_flag"), remove_flag=form.cleaned_data.get("remove_flag")
        )

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

"""Announcements in the admin: instructors post them to their own class, and correct them."""

from django.contrib import admin

from challenges.markdown import render_markdown
from vulhub.lib.admin import CappedCountPaginator, TenantScopedAdminMixin, request_tenant_id

from . import services
from .models import Announcement


@admin.register(Announcement)
class AnnouncementAdmin(TenantScopedAdminMixin, admin.ModelAdmin):
    """Saving a new announcement posts it: every student of the class sees it and is notified (news.services)."""

    list_display = ["title", "posted_at", "author"]
    list_select_related = ["author"]
    search_fields = ["title", "body"]
    ordering = ["-posted_at", "-id"]
    paginator = CappedCountPaginator
    show_full_result_count = False

    def get_fields(self, request, obj=None):
        return ["title", "body", "preview", "posted_at", "author"] if obj is not None else ["title", "body"]

    def get_readonly_fields(self, request, obj=None):
        return ["preview", "posted_at", "author"] if obj is not None else []

    @admin.display(description="As students see it")
    def preview(self, obj):
        return render_markdown(obj.body) if obj is not None else ""

    def save_model(self, request, obj, form, change):
        if change:
            services.announcement_edit(announcement=obj, actor=request.user)
        else:
            obj.tenant_id = request_tenant_id(request)
            services.announcement_post(announcement=obj, actor=request.user)

    def get_form(self, request, obj=None, **kwargs):
        form = super().get_form(request, obj, **kwargs)
        if "body" in form.base_fields:
            form.base_fields["body"].help_text = (
                "Markdown: **bold**, *italic*, [links](https://example.org), lists, `code`. Shown sanitised on the "
                "students' dashboard and in their notifications; e-mailed as written to those who asked for e-mail."
            )
        return form

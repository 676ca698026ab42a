"""The hints of a challenge, edited inline on its admin page."""

from django.contrib import admin

from vulhub.lib.admin import LabelledInlineFormSet

from .models import Hint


class HintInline(admin.TabularInline):
    model = Hint
    formset = LabelledInlineFormSet
    extra = 0
    fields = ["position", "text", "cost"]
    ordering = ["position", "id"]
    verbose_name = "hint"
    verbose_name_plural = "Hints (students unlock them in this order; a cost comes off their points for this challenge)"

"""The files of a challenge, uploaded inline on its admin page."""

from django.contrib import admin

from .models import ChallengeFile


class ChallengeFileInline(admin.TabularInline):
    model = ChallengeFile
    extra = 0
    fields = ["name", "file", "size", "sha256"]
    readonly_fields = ["size", "sha256"]

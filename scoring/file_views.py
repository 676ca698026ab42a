"""Challenge files, downloaded by the students who can see the challenge (anyone else: 404)."""

from django.contrib.auth.decorators import login_required
from django.http import FileResponse, Http404
from django.shortcuts import get_object_or_404

from challenges.models import ChallengeFile

from . import access
from .challenge_views import get_project_for


@login_required
def download(request, slug, file_id):
    project = get_project_for(request, slug)
    if not access.challenge_access(request.user, project).usable:
        raise Http404("No such file.")
    attachment = get_object_or_404(ChallengeFile.objects.for_tenant(request.tenant.pk), project=project, pk=file_id)
    response = FileResponse(attachment.file.open("rb"), as_attachment=True, filename=attachment.name)
    response["Content-Type"] = "application/octet-stream"
    return response

"""Challenge files, downloaded by the students who can use the challenge (anyone else: 404).

An unguessable URL is not enough: every download asks scoring.access whether the
student may use the challenge now (published, open, the event started, not locked by
a prerequisite), so another tenant's student, or one before the challenge opens, gets
the same 404 as for a file that does not exist. The tenant's staff (who author the
files) may download them at any time.

The bytes are streamed, never read whole into memory: a local file through
wsgi.file_wrapper (gunicorn sends it with sendfile), an S3 object from the bucket
(challenges.files.open_for_download). The transaction of the request has committed by
the time the body is sent, so a slow download holds no lock.
"""

import logging

from django.contrib.auth.decorators import login_required
from django.http import FileResponse, Http404
from django.shortcuts import get_object_or_404
from django.utils.cache import patch_cache_control
from django.views.decorators.http import require_safe

from challenges import files
from challenges.models import ChallengeFile

from . import access

logger = logging.getLogger(__name__)
BLOCK_SIZE = 256 * 1024  # what each read passes on when the server cannot sendfile (an S3 stream)


@login_required
@require_safe
def download(request, slug, file_id):
    attachment = get_object_or_404(
        ChallengeFile.objects.for_tenant(request.tenant.pk).select_related("project"), project__slug=slug, pk=file_id
    )
    project = attachment.project
    project.tenant = request.tenant  # the same row: access reads it without a query
    if not request.user.is_staff and not access.challenge_access(request.user, project).usable:
        raise Http404("No such file.")
    try:
        stream, length = files.open_for_download(attachment)
    except FileNotFoundError as error:  # the row outlived its object: an operator's problem
        logger.error("Challenge file %s is missing from its storage: %s", attachment.pk, error)
        raise Http404("No such file.") from None
    response = FileResponse(
        stream,
        as_attachment=True,
        filename=files.safe_download_name(attachment.name),
        content_type="application/octet-stream",
    )
    response.block_size = BLOCK_SIZE
    response["Content-Length"] = str(length)
    response["X-Content-Type-Options"] = "nosniff"
    patch_cache_control(response, private=True, no_store=True)
    return response

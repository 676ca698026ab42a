"""Domain events of challenges, sent by the services with the actor in hand."""

from django.dispatch import Signal

# project, actor
project_published = Signal()
project_unpublished = Signal()

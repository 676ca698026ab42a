"""Domain events of news, sent by the services with the actor in hand."""

from django.dispatch import Signal

# announcement, actor
announcement_posted = Signal()

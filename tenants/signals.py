"""Domain events of tenants and users, sent by the services with the actor in hand."""

from django.dispatch import Signal

# user, actor
user_registered = Signal()

from django import template

from vulhub.lib.ages import waited

register = template.Library()


@register.filter
def waited_until(since, now):
    """{{ submission.submitted_at|waited_until:home.now }}: "under a minute", "2 days, 3 hours"."""
    return waited(since, now) if since and now else ""

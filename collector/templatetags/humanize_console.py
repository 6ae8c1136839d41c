"""``thousands``: 12345 -> "12,345", whatever the locale settings say."""

from django import template

register = template.Library()


@register.filter
def thousands(value) -> str:
    try:
        return f"{int(value):,}"
    except (TypeError, ValueError):
        return value

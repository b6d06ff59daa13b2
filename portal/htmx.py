"""The one htmx helper: a page, or for htmx its live fragment, telling the poller when to stop."""

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.template.loader import render_to_string
from django_htmx.http import HttpResponseStopPolling


def render_live(request: HttpRequest, template: str, context: dict, *, partial: str | None = None,
                done: bool) -> HttpResponse:
    """``template`` as a page; for an htmx request only its ``partial`` (the whole template
    when None), answered 286 once ``done`` so that htmx stops polling (django-htmx)."""
    if not request.htmx:
        return render(request, template, context)
    name = f"{template}#{partial}" if partial else template
    content = render_to_string(name, context, request=request)
    return HttpResponseStopPolling(content) if done else HttpResponse(content)

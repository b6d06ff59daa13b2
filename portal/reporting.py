"""What error reports may show: Django's filter, plus passwords inside connection strings.

Django hides settings whose *name* looks secret (``SECRET_KEY``, ``PASSWORD``...), but a
password inside a URL hides under an innocent name: ``DATABASE_URL``, ``CELERY_BROKER_URL``,
``REDIS_URL``, a cache's ``LOCATION``, and the same variables in ``request.META`` under a WSGI
server (which copies the environment there). Such passwords are replaced wherever a value is
a string, in settings, nested dicts and lists, request META and frame variables, so even the
DEBUG page shows ``redis://:********************@host``.
"""

from __future__ import annotations

import re

from django.views.debug import SafeExceptionReporterFilter

# scheme://user:password@ (user may be empty, as in redis://:password@host)
URL_PASSWORD = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^:/?#@\s]*:)(?P<password>[^@/?#\s]+)@")


def hide_url_passwords(text: str, substitute: str) -> str:
    return URL_PASSWORD.sub(lambda m: f"{m['head']}{substitute}@", text)


class PortalExceptionReporterFilter(SafeExceptionReporterFilter):
    def cleanse_setting(self, key, value):
        cleansed = super().cleanse_setting(key, value)
        if type(cleansed) is str:  # not lazy objects, which pretend to be str
            return hide_url_passwords(cleansed, self.cleansed_substitute)
        return cleansed

    def get_traceback_frame_variables(self, request, tb_frame):
        return [
            (name, self.cleanse_setting("", value) if isinstance(value, (str, dict, list, tuple)) else value)
            for name, value in super().get_traceback_frame_variables(request, tb_frame)
        ]

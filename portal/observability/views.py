"""``/metrics``: for the operator's Prometheus only.

Absent (404) unless ``PORTAL_METRICS_TOKEN`` is set; then only ``Authorization: Bearer
<token>`` is answered (compared in constant time). Metrics name apps and show traffic: not
something to hand to whoever finds the URL.
"""

from __future__ import annotations

import hmac

from django.conf import settings
from django.http import Http404, HttpResponse
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST

from . import metrics


@require_GET
def metrics_view(request):
    token = settings.PORTAL_METRICS_TOKEN
    if not token:
        raise Http404("No metrics here.")
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        response = HttpResponse("Send the metrics token: Authorization: Bearer <PORTAL_METRICS_TOKEN>.\n",
                                status=401, content_type="text/plain")
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    if not hmac.compare_digest(given.strip().encode(), token.encode()):
        return HttpResponse("Wrong metrics token: use the value of PORTAL_METRICS_TOKEN.\n",
                            status=403, content_type="text/plain")
    return HttpResponse(metrics.exposition(), content_type=CONTENT_TYPE_LATEST)

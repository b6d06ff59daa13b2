"""A trivial view: liveness for `make run` and the baseline the page benchmarks compare to."""

from django.http import HttpResponse
from django.views.decorators.http import require_GET


@require_GET
def healthz(request):
    return HttpResponse("ok\n", content_type="text/plain")

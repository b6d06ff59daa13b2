"""The portal's public host names over time: noticing a change, and still answering the old one.

Licenses, pull secrets and every rendered image name carry PORTAL_URL's host or the proxy
host, and installed clusters keep pulling from the host they were given. ``hosts_record()``
(run after every ``migrate``, which ``make run`` and the deployment run before serving)
compares the configured values with the ones the database last saw and, on a change, sends
``hosts_changed``: the releases side reissues every license. ``previous_hosts_middleware``
keeps the hosts of PORTAL_PREVIOUS_HOSTS answering what an installed cluster calls (the proxy
registry, the update check, license sync) until the vendor removes them from the setting.
"""

from __future__ import annotations

from asgiref.sync import iscoroutinefunction
from django.conf import settings
from django.core.exceptions import MiddlewareNotUsed
from django.db import connection, transaction
from django.dispatch import Signal
from django.http import HttpResponse
from django.http.request import split_domain_port
from django.utils.decorators import sync_and_async_middleware

from .models import Installation

# Sent with old_url, new_url, old_proxy_host, new_proxy_host when either changed.
hosts_changed = Signal()

# What an installed cluster (not a person) calls: the proxy registry, the update check and
# license sync. Pages stay on the new host only, so sessions and cookies live on one name.
PREVIOUS_HOST_PATHS = ("/v2/", "/release/", "/license/")


def hosts_record() -> bool:
    """Record PORTAL_URL and PORTAL_PROXY_HOST; on a change, send ``hosts_changed`` (True)."""
    if Installation._meta.db_table not in connection.introspection.table_names():
        return False  # migrating backwards past the table
    new_url, new_proxy = settings.PORTAL_URL, settings.PORTAL_PROXY_HOST
    with transaction.atomic():
        Installation.current()
        installation = Installation.objects.select_for_update().get(pk=1)
        old_url, old_proxy = installation.portal_url, installation.proxy_host
        if (old_url, old_proxy) == (new_url, new_proxy):
            return False
        installation.portal_url, installation.proxy_host = new_url, new_proxy
        installation.save(update_fields=["portal_url", "proxy_host", "updated_at"])
        if not old_url and not old_proxy:
            return False  # first start: nothing was issued under another name
        hosts_changed.send(sender=Installation, old_url=old_url, new_url=new_url,
                           old_proxy_host=old_proxy, new_proxy_host=new_proxy)
    return True


def record_hosts_after_migrate(sender, **kwargs):
    hosts_record()


def previous_hostnames() -> set[str]:
    return {split_domain_port(h)[0] or h.lower() for h in settings.PORTAL_PREVIOUS_HOSTS}


def _refusal(request):
    """The answer to a page asked for on a previous host, or None to serve the request."""
    if request.path.startswith(PREVIOUS_HOST_PATHS):
        return None
    host = split_domain_port(request.get_host())[0]
    if host not in previous_hostnames():
        return None
    return HttpResponse(
        f"{host} is this portal's previous address; it only serves image pulls and update "
        f"checks now. Use {settings.PORTAL_URL}{request.path}\n", status=404, content_type="text/plain")


@sync_and_async_middleware
def previous_hosts_middleware(get_response):
    """On a host of PORTAL_PREVIOUS_HOSTS, answer only what installed clusters call.

    Not in the chain at all without previous hosts; async-capable, so the proxy's async views
    are not moved to a thread.
    """
    if not settings.PORTAL_PREVIOUS_HOSTS:
        raise MiddlewareNotUsed()
    if iscoroutinefunction(get_response):
        async def middleware(request):
            return _refusal(request) or await get_response(request)
    else:
        def middleware(request):
            return _refusal(request) or get_response(request)
    return middleware

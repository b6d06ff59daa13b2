from django.dispatch import receiver

from portal.hosts import hosts_changed

from .services import licenses_reissue_for_hosts


@receiver(hosts_changed)
def reissue_licenses(sender, old_url, new_url, old_proxy_host, new_proxy_host, **kwargs):
    licenses_reissue_for_hosts(old_url=old_url, new_url=new_url,
                               old_proxy_host=old_proxy_host, new_proxy_host=new_proxy_host)

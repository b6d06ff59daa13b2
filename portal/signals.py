from django.contrib.auth.signals import user_logged_in
from django.dispatch import receiver

from .audit import audit_log


@receiver(user_logged_in)
def record_login(sender, request, user, **kwargs):
    membership = getattr(user, "membership", None)
    audit_log(request=request, actor=user, team=membership.team if membership else None,
              action="login", obj=user, object_type="user")

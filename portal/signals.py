from axes.signals import user_locked_out
from django.contrib.auth.signals import user_logged_in, user_login_failed
from django.dispatch import receiver

from .audit import audit_log


@receiver(user_logged_in)
def record_login(sender, request, user, **kwargs):
    membership = getattr(user, "membership", None)
    audit_log(request=request, actor=user, team=membership.team if membership else None,
              action="login", obj=user, object_type="user")


def _member(username):
    from django.contrib.auth import get_user_model

    if not username:
        return None
    user = get_user_model().objects.filter(username=username).select_related("membership__team").first()
    return user if user is not None and hasattr(user, "membership") else None


@receiver(user_login_failed)
def record_failed_login(sender, credentials, request=None, **kwargs):
    """Tell the team's Admins about a failed login to one of their users (never the password).

    Names that are no team's user are not recorded: they may be a password typed in the wrong box.
    """
    user = _member(credentials.get("username"))
    if user is not None:
        audit_log(request=request, actor=None, team=user.membership.team, action="login_failed",
                  obj=user, object_type="user")


@receiver(user_locked_out)
def record_lockout(sender, request, username, ip_address, **kwargs):
    user = _member(username)
    if user is not None:
        audit_log(request=request, actor=None, team=user.membership.team, action="login_locked",
                  obj=user, object_type="user")

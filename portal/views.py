"""Team management, the audit log and the account pages."""

from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth import views as auth_views
from django.core.paginator import Paginator
from django.db import transaction
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse_lazy
from django.views.decorators.http import require_POST

from .audit import audit_log
from .forms import (
    AddMemberForm,
    AuditFilterForm,
    LoginForm,
    PasswordChangeForm,
    RoleForm,
    SetPasswordForm,
    form_status,
)
from .models import AuditEvent, Membership, Role
from .roles import team_required
from .tokens import revoke_personal_tokens

AUDIT_PAGE_SIZE = 50


def _team_context(request, add_form=None):
    members = (
        Membership.objects.filter(team=request.team).select_related("user").order_by("user__username")
    )
    return {
        "nav": "team",
        "members": members,
        "add_form": add_form or AddMemberForm(),
        "roles": Role.choices,
    }


@team_required("can_manage_team")
def team(request):
    return render(request, "portal/team.html", _team_context(request))


@require_POST
@team_required("can_manage_team")
def team_add(request):
    form = AddMemberForm(request.POST)
    if not form.is_valid():
        return render(request, "portal/team.html", _team_context(request, form), status=400)
    data = form.cleaned_data
    with transaction.atomic():
        user = get_user_model().objects.create_user(data["username"], data["email"], data["password"])
        membership = Membership.objects.create(user=user, team=request.team, role=data["role"])
        audit_log(request=request, team=request.team, action="add_member", obj=user, object_type="user",
                  detail={"role": membership.role, "email": user.email})
    messages.success(request, f"{user.username} added as {membership.get_role_display()}.")
    return redirect("portal-team")


def _locked_members(request):
    """The team's memberships, locked: two Admins demoting each other must not both succeed."""
    return Membership.objects.select_for_update().filter(team=request.team)


@require_POST
@team_required("can_manage_team")
def team_role(request, pk):
    form = RoleForm(request.POST)
    with transaction.atomic():
        members = list(_locked_members(request).select_related("user"))
        member = next((m for m in members if m.pk == pk), None)
        if member is None:
            raise Http404("No such member of your team.")
        if not form.is_valid():
            messages.error(request, "Choose Admin, Developer or Support.")
            return redirect("portal-team")
        new_role = form.cleaned_data["role"]
        if new_role == member.role:
            return redirect("portal-team")
        admins = [m for m in members if m.role == Role.ADMIN]
        if member.role == Role.ADMIN and len(admins) == 1:
            messages.error(request, f"{member.user.username} is the team's only Admin. "
                                    "Make someone else Admin first.")
            return redirect("portal-team")
        old_role = member.role
        member.role = new_role
        member.save(update_fields=["role"])
        audit_log(request=request, team=request.team, action="change_role", obj=member.user,
                  object_type="user", detail={"from": old_role, "to": new_role})
    messages.success(request, f"{member.user.username} is now {member.get_role_display()}.")
    if member.user_id == request.user.pk and new_role != Role.ADMIN:
        return redirect("releases-app-list")
    return redirect("portal-team")


@team_required("can_manage_team")
def team_remove(request, pk):
    """GET asks for confirmation; POST removes the member from the team and disables the login."""
    member = get_object_or_404(Membership.objects.select_related("user"), pk=pk, team=request.team)
    if member.user_id == request.user.pk:
        messages.error(request, "You cannot remove yourself. Ask another Admin.")
        return redirect("portal-team")
    if request.method != "POST":
        return render(request, "portal/team_remove.html", {"nav": "team", "member": member})
    with transaction.atomic():
        members = list(_locked_members(request))
        admins = [m for m in members if m.role == Role.ADMIN and m.pk != member.pk]
        if not admins:  # Cannot happen while the remover is an Admin, but never leave a team headless.
            messages.error(request, "The team needs at least one Admin.")
            return redirect("portal-team")
        user = member.user
        member.delete()
        # A removed user keeps no way in: without a team every page is a 403, and inactive
        # users cannot log in (their sessions end at the next request).
        user.is_active = False
        user.save(update_fields=["is_active"])
        revoke_personal_tokens(user=user, team=request.team)
        audit_log(request=request, team=request.team, action="remove_member", obj=user,
                  object_type="user", detail={"role": member.role})
    messages.success(request, f"{user.username} removed from the team.")
    return redirect("portal-team")


@team_required("can_manage_team")
def team_password(request, pk):
    """An Admin sets a new password for a member who forgot theirs (no email needed)."""
    member = get_object_or_404(Membership.objects.select_related("user"), pk=pk, team=request.team)
    form = SetPasswordForm(request.POST or None, user=member.user)
    if request.method == "POST" and form.is_valid():
        member.user.set_password(form.cleaned_data["password"])
        member.user.save(update_fields=["password"])  # ends the member's other sessions
        audit_log(request=request, team=request.team, action="set_password", obj=member.user,
                  object_type="user")
        messages.success(request, f"New password set for {member.user.username}. Give it to them by a safe channel.")
        return redirect("portal-team")
    return render(request, "portal/team_password.html", {"nav": "team", "member": member, "form": form},
                  status=form_status(form))


def password_reset(request):
    """No email here: a forgotten password is reset by an Admin of the team."""
    return render(request, "registration/password_reset_form.html")


@team_required("can_read_audit")
def audit(request):
    team_events = AuditEvent.objects.filter(team=request.team)
    # Few distinct values; three small queries whatever the size of the log.
    form = AuditFilterForm(
        request.GET or None,
        actions=team_events.order_by("action").values_list("action", flat=True).distinct(),
        actors=team_events.exclude(actor_name="").order_by("actor_name")
        .values_list("actor_name", flat=True).distinct(),
        object_types=team_events.exclude(object_type="").order_by("object_type")
        .values_list("object_type", flat=True).distinct(),
    )
    events = team_events
    if form.is_bound and form.is_valid():
        events = form.filter(events)
    elif form.is_bound:
        events = team_events.none()
    page = Paginator(events.order_by("-created_at", "-id"), AUDIT_PAGE_SIZE).get_page(request.GET.get("page"))
    params = request.GET.copy()
    params.pop("page", None)
    template = "portal/audit.html"
    if request.htmx and request.htmx.target == "audit-results":
        template += "#results"
    return render(request, template, {"nav": "audit", "form": form, "page": page, "params": params.urlencode()},
                  status=form_status(form))


class RefusedFormAnswers400:
    """For Django's class-based form views: a form shown again with its errors answers 400,
    as ``form_status`` makes the function views do."""

    def form_invalid(self, form):
        response = super().form_invalid(form)
        response.status_code = 400
        return response


class LoginView(RefusedFormAnswers400, auth_views.LoginView):
    """Django's login with a bounded form (axes counts the refusals)."""

    form_class = LoginForm


class PasswordChangeView(RefusedFormAnswers400, auth_views.PasswordChangeView):
    """Django's password change, bounded and audited."""

    form_class = PasswordChangeForm
    success_url = reverse_lazy("password_change_done")

    def form_valid(self, form):
        response = super().form_valid(form)
        membership = getattr(self.request.user, "membership", None)
        audit_log(request=self.request, team=membership.team if membership else None,
                  action="change_password", obj=self.request.user, object_type="user")
        return response

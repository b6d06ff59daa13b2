"""The Tokens page (Admins: the team's service-account tokens) and "My tokens" (everyone).

A new token is shown once, in the answer to the POST that made it: never in a redirect, a
message or the session, which would put it in the database.
"""

from django import forms
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from .forms import AccessibleForm, form_status
from .models import ROLE_RANK, ApiToken, Role
from .roles import check_capability, team_required
from .tokens import token_create, token_revoke

MAX_EXPIRY_DAYS = 3650


class TokenForm(AccessibleForm, forms.Form):
    name = forms.CharField(max_length=100, help_text="Where it is used, such as ci-release.")
    role = forms.ChoiceField(choices=Role.choices, initial=Role.DEVELOPER,
                             help_text="At most your own role.")
    apps = forms.ModelMultipleChoiceField(
        queryset=None, required=False, widget=forms.CheckboxSelectMultiple,
        help_text="Leave all unticked for every app. A token limited to apps cannot change team-wide things.")
    expires_in_days = forms.IntegerField(
        min_value=1, max_value=MAX_EXPIRY_DAYS, required=False, label="Expires in (days)",
        help_text="Leave empty for a token that does not expire.")

    def __init__(self, *args, membership, **kwargs):
        super().__init__(*args, **kwargs)
        # The apps of the team, without importing the app that defines them.
        app_model = ApiToken._meta.get_field("apps").related_model
        self.fields["apps"].queryset = app_model.objects.filter(team=membership.team, archived_at__isnull=True)
        self.fields["apps"].label_from_instance = lambda app: app.name
        self.fields["role"].choices = [(v, label) for v, label in Role.choices
                                       if ROLE_RANK[v] <= ROLE_RANK[membership.role]]
        self.describe_fields()


def _tokens_page(request, *, kind):
    personal = kind == ApiToken.Kind.PERSONAL
    tokens = ApiToken.objects.filter(team=request.team, kind=kind).prefetch_related("apps")
    if personal:
        tokens = tokens.filter(user=request.user)
    form = TokenForm(request.POST or None, membership=request.membership)
    new_token = None
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            _row, new_token = token_create(
                team=request.team, creator=request.user, kind=kind, name=data["name"], role=data["role"],
                apps=data["apps"], expires_in_days=data["expires_in_days"], request=request)
        except ValidationError as error:
            form.add_error(None, error)
        else:
            form = TokenForm(membership=request.membership)
    return render(request, "portal/tokens.html", {
        "nav": "tokens" if not personal else "", "personal": personal, "tokens": tokens, "form": form,
        "new_token": new_token,
    }, status=form_status(form))


@never_cache
@team_required("can_manage_team")
def tokens(request):
    return _tokens_page(request, kind=ApiToken.Kind.SERVICE)


@never_cache
@team_required()
def my_tokens(request):
    return _tokens_page(request, kind=ApiToken.Kind.PERSONAL)


@require_POST
@team_required()
def token_revoke_view(request, pk):
    """Admins revoke the team's service accounts; everyone revokes their own personal tokens."""
    token = get_object_or_404(ApiToken, pk=pk, team=request.team)
    personal = token.kind == ApiToken.Kind.PERSONAL
    if personal and token.user_id != request.user.pk:
        raise Http404("No such token.")
    if not personal:
        check_capability(request.membership, "can_manage_team")
    if token_revoke(token=token, user=request.user, request=request):
        messages.success(request, f"Token {token.name} ({token.prefix}) revoked: its next call is refused.")
    return redirect("portal-my-tokens" if personal else "portal-tokens")

"""Print a new service-account token: bootstrap an installation's CI from a script."""

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from portal.models import ApiToken, Role, Team
from portal.tokens import token_create

ROLES = {label.lower(): value for value, label in Role.choices} | {value: value for value, _ in Role.choices}


class Command(BaseCommand):
    help = "Create a service-account API token and print it (only the token, on stdout)."

    def add_arguments(self, parser):
        parser.add_argument("--team", required=True, help="The team's name (or id).")
        parser.add_argument("--role", required=True, help="Admin, Developer or Support.")
        parser.add_argument("--name", required=True, help="What the token is for, such as ci-release.")
        parser.add_argument("--app", action="append", default=[], metavar="SLUG",
                            help="Limit the token to this app (repeat for several).")
        parser.add_argument("--expires-in", type=int, metavar="DAYS", help="Days until it expires.")

    def handle(self, *args, team, role, name, app, expires_in, **options):
        teams = Team.objects.filter(name=team)
        if not teams.exists() and team.isdigit():
            teams = Team.objects.filter(pk=int(team))
        if teams.count() != 1:
            raise CommandError(f"No single team named {team!r}: give its exact name or id.")
        team_row = teams.get()
        role_value = ROLES.get(role.lower())
        if role_value is None:
            raise CommandError("--role must be Admin, Developer or Support.")
        app_model = ApiToken._meta.get_field("apps").related_model
        apps = list(app_model.objects.filter(team=team_row, slug__in=app))
        missing = set(app) - {a.slug for a in apps}
        if missing:
            raise CommandError(f"The team has no app {', '.join(sorted(missing))}.")
        if expires_in is not None and expires_in < 1:
            raise CommandError("--expires-in must be at least 1 day.")
        try:
            _row, token = token_create(team=team_row, creator=None, kind=ApiToken.Kind.SERVICE, name=name,
                                       role=role_value, apps=apps, expires_in_days=expires_in)
        except ValidationError as error:
            raise CommandError(" ".join(error.messages)) from None
        self.stdout.write(token)

"""``manage.py check --deploy``: the keys, and the production configuration's essentials."""

from django.conf import settings
from django.core.checks import Error, Warning, register
from django.db import DatabaseError

from .keys import keys_problem


@register("portal", deploy=True)
def check_keys(app_configs, **kwargs):
    """The configured keys must be the ones this database's data was made with."""
    try:
        problem = keys_problem()
    except DatabaseError as e:
        return [Warning(f"the keys could not be compared with the database ({type(e).__name__})",
                        hint="run manage.py migrate, then check --deploy again", id="portal.W001")]
    if problem:
        return [Error(problem, hint="docs/deploy.md, Keys: restore with manage.py import_keys",
                      id="portal.E001")]
    return []


@register("portal", deploy=True)
def check_production(app_configs, **kwargs):
    if settings.PORTAL_ENV != "production":
        return [Warning("PORTAL_ENV is not production: secrets missing from the environment are "
                        "generated into var/", hint="set PORTAL_ENV=production", id="portal.W002")]
    problems = []
    if not settings.PORTAL_HTTPS:
        problems.append(Warning("PORTAL_URL is not https: Kubernetes nodes refuse to pull from a "
                                "plain-HTTP registry", hint="PORTAL_URL=https://portal.example.com",
                                id="portal.W003"))
    if settings.DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
        problems.append(Warning("the database is SQLite: several web and worker processes need PostgreSQL",
                                hint="DATABASE_URL=postgres://…", id="portal.W004"))
    if not settings.REDIS_URL:
        problems.append(Warning("REDIS_URL is not set: no worker receives tasks and each process "
                                "keeps its own throttles and caches", hint="REDIS_URL=redis://…",
                                id="portal.W005"))
    return problems

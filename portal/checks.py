"""``manage.py check --deploy``: the configured keys must be the ones the data was made with."""

from django.core.checks import Error, Warning, register
from django.db import DatabaseError, connection

from .keys import keys_problem
from .models import Installation


@register("portal", deploy=True)
def check_keys(app_configs, **kwargs):
    try:
        if Installation._meta.db_table not in connection.introspection.table_names():
            return []  # not migrated: no data yet that other keys could have made
        problem = keys_problem()
    except DatabaseError as e:
        return [Warning(f"the keys could not be compared with the database ({type(e).__name__})",
                        hint="check DATABASE_URL, then run check --deploy again", id="portal.W001")]
    if problem:
        return [Error(problem, hint="docs/deploy.md, Keys: restore with manage.py import_keys",
                      id="portal.E001")]
    return []

"""MirrorJob moved to the registries_mirror app in Django's state only: no row moves.

A database migrated before the move, with a mirror job in it, is migrated to the latest
migrations; the job is then found through the moved model with every field as it was.
"""

from datetime import timedelta

import pytest
from django.core.management import call_command
from django.db import connections
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from registries.mirror.models import MirrorJob

ALIAS = "mirror_migration"

# The latest migrations before MirrorJob left the registries app.
BEFORE_THE_MOVE = [
    ("portal", "0001_initial"),
    ("registries", "0003_mirrorjob_open_uploads"),
    ("releases", "0003_image_verdict_queued_at"),
]


@pytest.fixture
def sqlite_file(tmp_path, django_db_blocker):
    """A connection of its own to an empty SQLite file, beside the test database."""
    configured = connections.configure_settings({
        "default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"},
        ALIAS: {"ENGINE": "django.db.backends.sqlite3", "NAME": str(tmp_path / "portal.sqlite3")},
    })
    connections.settings[ALIAS] = configured[ALIAS]
    with django_db_blocker.unblock():
        try:
            yield connections[ALIAS]
        finally:
            connections[ALIAS].close()
            del connections[ALIAS]
            del connections.settings[ALIAS]


def test_a_mirror_job_made_before_the_move_is_found_through_the_moved_model(sqlite_file):
    executor = MigrationExecutor(sqlite_file)
    executor.migrate(BEFORE_THE_MOVE)
    old = executor.loader.project_state(BEFORE_THE_MOVE).apps
    assert old.get_model("registries", "MirrorJob")._meta.db_table == "registries_mirrorjob"

    user = old.get_model("auth", "User").objects.using(ALIAS).create(username="alice")
    team = old.get_model("portal", "Team").objects.using(ALIAS).create(name="Acme")
    Registry = old.get_model("registries", "ExternalRegistry")
    target = Registry.objects.using(ALIAS).create(team=team, endpoint="registry.example.com")
    source = Registry.objects.using(ALIAS).create(team=team, endpoint="ghcr.io")
    now = timezone.now().replace(microsecond=0)
    values = dict(
        team_id=team.pk, registry_id=target.pk, source_registry_id=source.pk,
        created_by_id=user.pk,
        source_reference="ghcr.io/acme/app:1.0", platforms="linux/amd64,linux/arm64",
        target_repository="demo-apps/app", target_tag="1.0",
        status="running", cancel_requested=True, lease_until=now + timedelta(seconds=60),
        attempts=2, blobs_done=3, blobs_total=5, bytes_done=1234, bytes_total=56789,
        log=[{"digest": "sha256:" + "a" * 64, "state": "copied"}],
        open_uploads=["/v2/demo-apps/app/blobs/uploads/abc"],
        result_digest="sha256:" + "b" * 64, result_skipped=True,
        error="Throttled", error_code="throttled",
        push_username="pusher", push_secret_encrypted="gAAAA-not-a-real-token",
        started_at=now, finished_at=now + timedelta(minutes=1),
    )
    old_job = old.get_model("registries", "MirrorJob").objects.using(ALIAS).create(**values)

    executor = MigrationExecutor(sqlite_file)
    latest = executor.loader.graph.leaf_nodes()
    assert ("registries_mirror", "0001_initial") in latest
    executor.migrate(latest)

    job = MirrorJob.objects.using(ALIAS).get()
    assert job.pk == old_job.pk
    for name, value in values.items():
        assert getattr(job, name) == value, name
    assert job.created_at == old_job.created_at and job.updated_at == old_job.updated_at
    assert job.registry.endpoint == "registry.example.com"
    assert job.source_registry.endpoint == "ghcr.io"
    assert job.team.name == "Acme" and job.created_by.username == "alice"
    assert list(MirrorJob.objects.using(ALIAS).filter(team_id=team.pk, status="running")) == [job]
    # The registries app no longer has the model; registries_mirror has it on the same table.
    state = executor.loader.project_state(latest)
    assert ("registries", "mirrorjob") not in state.models
    assert state.models["registries_mirror", "mirrorjob"].options["db_table"] == "registries_mirrorjob"


@pytest.mark.django_db
def test_the_models_and_the_migrations_agree():
    # Exits with status 1 when a model change has no migration (the moved model included).
    call_command("makemigrations", "--check", "--dry-run", verbosity=0)

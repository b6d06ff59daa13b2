"""MirrorJob moves to the registries_mirror app: in Django's state only.

Its table (registries_mirrorjob) and rows stay where they are; registries_mirror's first
migration, which depends on this one, takes the model over in its own state.
"""

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('registries', '0003_mirrorjob_open_uploads'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.DeleteModel(name='MirrorJob')],
            database_operations=[],
        ),
    ]

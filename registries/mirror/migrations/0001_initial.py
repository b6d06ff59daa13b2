"""MirrorJob, taken over from the registries app in Django's state only.

The table registries_mirrorjob already exists (registries 0002 and 0003 made it, on a fresh
database as on an existing one): nothing is created and no row moves.
"""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ('portal', '0001_initial'),
        ('registries', '0004_mirrorjob_to_registries_mirror'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name='MirrorJob',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('source_reference', models.CharField(help_text='Normalised, e.g. docker.io/library/nginx:latest', max_length=512)),
                        ('platforms', models.CharField(blank=True, help_text='Comma-separated; empty = all', max_length=255)),
                        ('target_repository', models.CharField(max_length=255)),
                        ('target_tag', models.CharField(max_length=128)),
                        ('status', models.CharField(choices=[('queued', 'Queued'), ('running', 'Running'), ('succeeded', 'Succeeded'), ('failed', 'Failed'), ('canceled', 'Canceled')], default='queued', max_length=16)),
                        ('cancel_requested', models.BooleanField(default=False)),
                        ('lease_until', models.DateTimeField(blank=True, null=True)),
                        ('attempts', models.PositiveIntegerField(default=0)),
                        ('blobs_done', models.PositiveIntegerField(default=0)),
                        ('blobs_total', models.PositiveIntegerField(default=0)),
                        ('bytes_done', models.BigIntegerField(default=0)),
                        ('bytes_total', models.BigIntegerField(default=0)),
                        ('log', models.JSONField(blank=True, default=list)),
                        ('open_uploads', models.JSONField(blank=True, default=list)),
                        ('result_digest', models.CharField(blank=True, max_length=100)),
                        ('result_skipped', models.BooleanField(default=False)),
                        ('error', models.TextField(blank=True)),
                        ('error_code', models.CharField(blank=True, max_length=40)),
                        ('push_username', models.CharField(blank=True, max_length=255)),
                        ('push_secret_encrypted', models.TextField(blank=True)),
                        ('created_at', models.DateTimeField(auto_now_add=True)),
                        ('started_at', models.DateTimeField(blank=True, null=True)),
                        ('finished_at', models.DateTimeField(blank=True, null=True)),
                        ('updated_at', models.DateTimeField(auto_now=True)),
                        ('created_by', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL)),
                        ('registry', models.ForeignKey(help_text='The target registry', on_delete=django.db.models.deletion.CASCADE, related_name='mirror_jobs', to='registries.externalregistry')),
                        ('source_registry', models.ForeignKey(blank=True, help_text='A linked registry whose credentials read the source', null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to='registries.externalregistry')),
                        ('team', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='mirror_jobs', to='portal.team')),
                    ],
                    options={
                        'db_table': 'registries_mirrorjob',
                        'ordering': ['-created_at', '-pk'],
                        'indexes': [models.Index(fields=['team', 'status'], name='mirrorjob_team_status')],
                    },
                ),
            ],
            database_operations=[],
        ),
    ]

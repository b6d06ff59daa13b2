import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    """ImageVerdict as a model of this app: state only, its table (releases_imageverdict) was created by
    releases' migrations and keeps its rows (releases 0004 removes it from releases' state)."""

    initial = True

    dependencies = [
        ('registries', '0001_initial'),
        ('releases', '0004_pull_log_and_image_verdicts_move'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name='ImageVerdict',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('reference', models.CharField(help_text='Normalised: host/path:tag[@digest]', max_length=512)),
                        ('verdict', models.CharField(choices=[('checking', 'Checking'), ('public', 'Public'), ('private', 'Private, proxied'), ('unlinked', 'Private and not linked'), ('error', 'Could not check')], default='checking', max_length=10)),
                        ('message', models.TextField(blank=True)),
                        ('checked_at', models.DateTimeField(blank=True, null=True)),
                        ('queued_at', models.DateTimeField(blank=True, null=True)),
                        ('app', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='image_verdicts', to='releases.app')),
                        ('registry', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to='registries.externalregistry')),
                    ],
                    options={
                        'db_table': 'releases_imageverdict',
                        'ordering': ['reference'],
                        'constraints': [models.UniqueConstraint(fields=('app', 'reference'), name='image_verdict_unique_per_app')],
                    },
                ),
            ],
            database_operations=[],
        ),
    ]

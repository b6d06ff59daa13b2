import django.db.models.deletion
import django.utils.timezone
from django.db import migrations, models


class Migration(migrations.Migration):
    """PullEvent as a model of this app: state only, its table (releases_pullevent) was created by
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
                    name='PullEvent',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('created_at', models.DateTimeField(db_index=True, default=django.utils.timezone.now)),
                        ('image', models.CharField(help_text='The upstream repository, host/path', max_length=512)),
                        ('reference', models.CharField(help_text='Tag or digest asked for', max_length=200)),
                        ('kind', models.CharField(choices=[('manifest', 'Manifest'), ('blob', 'Blob')], max_length=10)),
                        ('method', models.CharField(default='GET', max_length=6)),
                        ('status', models.PositiveSmallIntegerField()),
                        ('bytes', models.BigIntegerField(default=0)),
                        ('app', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='pull_events', to='releases.app')),
                        ('customer', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='pull_events', to='releases.customer')),
                        ('registry', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='pull_events', to='registries.externalregistry')),
                    ],
                    options={
                        'db_table': 'releases_pullevent',
                        'ordering': ['-created_at', '-id'],
                        'indexes': [models.Index(fields=['registry', '-created_at'], name='pull_registry_time'), models.Index(fields=['customer', '-created_at'], name='pull_customer_time')],
                    },
                ),
            ],
            database_operations=[],
        ),
    ]

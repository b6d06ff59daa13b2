from django.db import migrations


class Migration(migrations.Migration):
    """PullEvent and ImageVerdict now belong to releases.proxy and releases.image_check.

    State only: their tables stay where they are (the new apps name them with ``db_table``).
    """

    dependencies = [
        ("releases", "0003_image_verdict_queued_at"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.DeleteModel(name="PullEvent"),
                migrations.DeleteModel(name="ImageVerdict"),
            ],
            database_operations=[],
        ),
    ]

"""The table of :class:`wkdj_app.models.Entry`."""

from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True
    dependencies: list[tuple[str, str]] = []  # noqa: RUF012  (Django's migration layout)
    operations = [  # noqa: RUF012
        migrations.CreateModel(
            name="Entry",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("label", models.CharField(max_length=100)),
                ("stamp", models.CharField(default="", max_length=100)),
                ("pid", models.IntegerField()),
                ("thread", models.BigIntegerField()),
                ("connection", models.CharField(max_length=100)),
            ],
        ),
    ]

# The per-day rollup of an organization's runs as a whole (latency percentiles until now) also
# counts the day's runs still in the ledger, per day, so that the trace list counts any range of
# whole sealed days without reading their runs; the seal's single total goes.

import datetime as dt

from django.db import migrations, models
from django.db.models import Count
from django.db.models.functions import TruncDate


def count_runs_per_sealed_day(apps, schema_editor):
    seal_model = apps.get_model("observability", "UsageSeal")
    run_model = apps.get_model("observability", "Run")
    day_model = apps.get_model("observability", "RunDailyRollup")
    for seal in seal_model.objects.exclude(sealed_until=None):
        per_day = (
            run_model.objects.filter(organization_id=seal.organization_id, created_at__lt=seal.sealed_until)
            .annotate(day=TruncDate("created_at", tzinfo=dt.UTC))
            .order_by()
            .values("day")
            .annotate(n=Count("*"))
        )
        for row in per_day:
            day_model.objects.update_or_create(
                organization_id=seal.organization_id, date=row["day"], defaults={"runs": row["n"]}
            )


class Migration(migrations.Migration):

    dependencies = [
        ('observability', '0008_seal_counts_runs_by_kind'),
    ]

    operations = [
        migrations.RenameModel(old_name='LatencyDailyRollup', new_name='RunDailyRollup'),
        migrations.AddField(
            model_name='rundailyrollup',
            name='runs',
            field=models.BigIntegerField(default=0),
        ),
        migrations.RemoveField(model_name='usageseal', name='sealed_runs'),
        migrations.RunPython(count_runs_per_sealed_day, migrations.RunPython.noop, elidable=True),
    ]

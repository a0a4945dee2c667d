"""What a job leaves behind: one row per run, saying which process, thread and database connection ran it."""

from __future__ import annotations

from django.db import models


class Entry(models.Model):
    label = models.CharField(max_length=100)
    stamp = models.CharField(max_length=100, default="")
    pid = models.IntegerField()
    thread = models.BigIntegerField()
    connection = models.CharField(max_length=100)
    """Which database connection the job's insert used: ``pid-serial``, a serial per connection opened."""

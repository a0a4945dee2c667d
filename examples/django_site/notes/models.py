"""A note, and what the background job works out about it."""

from django.db import models


class Note(models.Model):
    text = models.TextField()
    created = models.DateTimeField(auto_now_add=True)
    words = models.IntegerField(null=True, blank=True, help_text="counted by the notes.jobs.count_words job")

    def __str__(self) -> str:
        return self.text[:50]

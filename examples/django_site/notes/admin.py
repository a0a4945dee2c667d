"""Notes in Django's admin."""

from django.contrib import admin

from notes.models import Note

admin.site.register(Note, list_display=["text", "words", "created"])

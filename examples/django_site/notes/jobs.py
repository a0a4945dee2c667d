"""The background jobs of the example (``settings.WORKERKIT['JOB_MODULES']`` loads this module).

Jobs receive ids, not model objects (arguments are JSON), and read the rows themselves.
"""

from datetime import timedelta

from django.utils import timezone

import workerkit
from notes.models import Note
from workerkit import Job, job


@job(retry=3)
def count_words(note_id: int) -> None:
    """Count the words of a note and save the count."""
    note = Note.objects.get(pk=note_id)
    note.words = len(note.text.split())
    note.save(update_fields=["words"])


class ForgetOldNotes(Job):
    """Delete the notes older than a week."""

    retry = False

    def perform(self) -> None:
        Note.objects.filter(created__lt=timezone.now() - timedelta(days=7)).delete()


workerkit.periodic("0 3 * * *", ForgetOldNotes, name="forget-old-notes")  # every night at 3

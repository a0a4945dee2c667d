"""The notes page: saving a note pushes the job that counts its words, once the note is committed."""

from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from notes.jobs import count_words
from notes.models import Note
from workerkit.contrib.django.transactions import on_commit_push


def index(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        text = request.POST.get("text", "").strip()[:2000]
        if text:
            with transaction.atomic():
                note = Note.objects.create(text=text)
                # Pushed when the row is committed: the job never looks for a note that is not there yet.
                on_commit_push(count_words.delay, note.pk)
        return redirect("index")
    return render(request, "notes/index.html", {"notes": Note.objects.order_by("-created")[:20]})

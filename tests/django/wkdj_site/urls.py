"""One page of the test project's own, to show Django still serves its paths beside the dashboard."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.urls import path


def hello(request: HttpRequest) -> HttpResponse:
    user = request.user.get_username() or "anonymous"
    return HttpResponse(f"hello from django, {user}", content_type="text/plain")


urlpatterns = [path("hello/", hello)]

"""The notes page and Django's admin (the dashboard is mounted beside Django, in ``djsite.asgi``)."""

from django.contrib import admin
from django.urls import path
from notes import views

urlpatterns = [
    path("", views.index, name="index"),
    path("admin/", admin.site.urls),
]

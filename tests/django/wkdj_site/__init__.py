"""The Django project the tests of ``workerkit.contrib.django`` run (settings and URLs)."""

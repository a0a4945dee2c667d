"""The sign-up demo: a small Starlette site whose buttons push the kinds of background work from the seeds.

``jobs.py`` holds the jobs (workers load it with ``-r examples.signup.jobs``), ``app.py`` the web app with
the workerkit dashboard mounted at ``/workerkit``. Both reach Redis at ``REDIS_URL``, else on port
``REDIS_PORT`` (default 6390, where ``Procfile.example`` starts it).
"""

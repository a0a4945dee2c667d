"""fastshop: a small FastAPI shop whose endpoints hand work to workerkit with the awaitable pushes.

``jobs.py`` holds the jobs (the workers load it with ``-r fastshop.jobs``) and the app's own Redis keys;
``app.py`` is the FastAPI app, with the workerkit dashboard mounted at ``/workerkit`` behind a token.
"""

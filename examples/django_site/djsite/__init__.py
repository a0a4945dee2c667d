"""The example Django site: settings, URLs, and the ASGI app with the workerkit dashboard mounted."""

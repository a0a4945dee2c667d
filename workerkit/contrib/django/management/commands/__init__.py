"""``python manage.py workerkit ...``."""

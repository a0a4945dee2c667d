"""Django management commands of workerkit."""

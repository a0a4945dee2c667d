"""Integrations of workerkit with frameworks: :mod:`workerkit.contrib.django`."""

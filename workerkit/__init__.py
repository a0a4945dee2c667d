"""workerkit: a Sidekiq-class background-job runtime on Redis."""

__version__ = "0.1.0"

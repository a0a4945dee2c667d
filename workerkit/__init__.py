"""workerkit: a Sidekiq-class background-job runtime on Redis."""

from workerkit.client import push, push_bulk
from workerkit.config import configure
from workerkit.job import Job, job
from workerkit.periodic import periodic

__version__ = "0.1.0"
__all__ = ["Job", "__version__", "configure", "job", "periodic", "push", "push_bulk"]

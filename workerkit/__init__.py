"""workerkit: a Sidekiq-class background-job runtime on Redis."""

from workerkit.batch import Batch, BatchNotFound, BatchStatus
from workerkit.batch_scope import BatchError
from workerkit.cancellation import Cancelled, cancel
from workerkit.client import NotReplicated, apush, apush_bulk, push, push_bulk
from workerkit.config import configure
from workerkit.job import Job, job
from workerkit.periodic import periodic
from workerkit.results import JobResult, ResultNotFound, aresult, result
from workerkit.timelimit import JobTimeout

__version__ = "0.1.0"
__all__ = [
    "Batch", "BatchError", "BatchNotFound", "BatchStatus", "Cancelled", "Job", "JobResult", "JobTimeout",
    "NotReplicated", "ResultNotFound", "__version__", "apush", "apush_bulk", "aresult", "cancel", "configure", "job",
    "periodic", "push", "push_bulk", "result",
]

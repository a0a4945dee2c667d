"""The test project's app: one model the jobs write to, and the jobs."""

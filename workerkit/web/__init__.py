"""The workerkit dashboard: ``app.mount("/workerkit", workerkit.web.dashboard())`` or ``workerkit web``."""

from workerkit.web.app import dashboard
from workerkit.web.security import Auth, basic_auth, bearer_auth

__all__ = ["Auth", "basic_auth", "bearer_auth", "dashboard"]

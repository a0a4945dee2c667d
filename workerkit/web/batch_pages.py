"""The dashboard's Batches pages (``workerkit.batch``): the batches kept, newest first, with their progress;
and a page per batch with its counts, events, parent and children, and the jobs that are pending, failed
or dead (each linked to where it waits)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from workerkit import batch
from workerkit.web.metrics_pages import Renders

PER_PAGE = 25
MEMBERS_SHOWN = 100
"""Members listed per kind on a batch's page (the counts are exact)."""


def _page(request: Request) -> int:
    try:
        return max(1, min(int(request.query_params.get("page", "1")), 10**6))
    except ValueError:
        return 1


class BatchPages:
    """The endpoints of the Batches pages."""

    def __init__(self, board: Renders) -> None:
        self.board = board

    def batches(self, request: Request) -> Response:
        """``/batches``: the batches kept, newest first."""
        page = _page(request)
        api = self.board.api
        total, found = batch.recent(api.conn, api.keys, (page - 1) * PER_PAGE, PER_PAGE)
        pages = max(1, -(-total // PER_PAGE))
        return self.board.render(request, "batches.html", batches=found, page=page, pages=pages, total=total)

    def batch(self, request: Request) -> Response:
        """``/batches/<bid>``: one batch."""
        api = self.board.api
        bid = request.path_params["bid"][:100]
        try:
            status = batch.read_status(api.conn, api.keys, bid)
        except batch.BatchNotFound:
            return self.board.render(request, "batch.html", 404, found=None, bid=bid)
        listed = {kind: batch.members(api.conn, api.keys, bid, kind, MEMBERS_SHOWN)
                  for kind in ("pending", "failed", "dead")}
        return self.board.render(request, "batch.html", found=status, bid=bid, listed=listed, shown=MEMBERS_SHOWN)

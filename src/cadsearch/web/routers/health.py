"""``GET /healthz``: is the app up, and can it search?"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool

from cadsearch.web.deps import NOT_READY, get_library
from cadsearch.web.schemas import Health

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health, summary="Liveness and readiness")
async def healthz(request: Request, library=Depends(get_library)) -> Health:
    """Always 200 while the app runs; ``search_ready`` says whether searches can be answered."""
    ready = getattr(request.app.state, "searcher", None) is not None
    detail = None if ready else (getattr(request.app.state, "searcher_error", None) or NOT_READY)
    return Health(status="ok", search_ready=ready, detail=detail, models=await run_in_threadpool(len, library))

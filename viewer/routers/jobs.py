"""Simulation jobs: start (POST), status, progress as server-sent events, cancel."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, field_validator

from cim.scenario import normalise_scenario_name
from viewer.dependencies import get_state, require
from viewer.jobs import ENGINES
from viewer.limits import LimitedRoute

#: what a job request looks like, for the errors that say the body is wrong
EXAMPLE = '{"engine": "flood", "scenario": "base", "run": "storm50", "params": {"storm": "50y", "duration": "1h"}}'


class LimitedBodyRoute(LimitedRoute):
    """The jobs' routes: the body limit of :data:`~viewer.limits.LimitedRoute` (whose class name it keeps), and a
    body that is not JSON, or not a JSON object with ``engine``, gets an error that says what a job request is,
    with an example (it got "1: JSON decode error")."""

    def get_route_handler(self):
        handler = super().get_route_handler()

        async def route(request: Request):
            try:
                return await handler(request)
            except RequestValidationError as exc:
                msg = _body_error(exc.errors(), request)
                if msg is None:
                    raise
                return JSONResponse({"detail": msg, "error": "invalid request"}, status_code=422)

        return route


def _body_error(errors, request: Request) -> str | None:
    """A message for a job request whose body is not JSON, not an object, or has a bad ``engine``; None for other
    errors (the app's handler words those)."""
    for e in errors:
        loc, kind = tuple(e.get("loc", ())), e.get("type", "")
        if kind == "json_invalid":
            why = (e.get("ctx") or {}).get("error", "not JSON")
            at = f" at character {loc[1]}" if len(loc) > 1 and isinstance(loc[1], int) else ""
            return (f"the request body is not valid JSON ({why}{at}): send a JSON object with \"engine\" and "
                    f"\"params\" (and optionally \"scenario\" and \"run\"), e.g. {EXAMPLE}, with Content-Type: "
                    "application/json")
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if loc == ("body",) and ctype not in ("application/json", "") and not ctype.endswith("+json"):
            return (f"the request body was sent as Content-Type {ctype!r}, which the server does not read as JSON; "
                    f"send JSON with Content-Type: application/json, e.g. {EXAMPLE}")
        if loc == ("body",):
            return (f"the request body must be a JSON object with \"engine\" and \"params\" (and optionally "
                    f"\"scenario\" and \"run\"), not {type(e.get('input')).__name__ if e.get('input') is not None else 'empty'}"
                    f", e.g. {EXAMPLE}")
        if kind == "extra_forbidden" and len(loc) == 2:
            return (f"unknown field {loc[1]!r} in the job request: it takes \"engine\", \"params\", \"scenario\" "
                    f"and \"run\" (the engine's parameters go inside \"params\"), e.g. {EXAMPLE}")
        if loc[:2] == ("body", "engine"):
            engines = request.app.state.twin_state.jobs.available()
            return (f"engine: {'missing' if kind == 'missing' else e.get('msg')}; give one of {engines}, "
                    f"e.g. {EXAMPLE}")
    return None


router = APIRouter(prefix="/api/jobs", tags=["jobs"], route_class=LimitedBodyRoute)


class JobIn(BaseModel):
    # a misspelt field ("parms") was dropped and the engine ran with its defaults, not what was asked
    model_config = ConfigDict(extra="forbid")

    engine: str = Field(..., pattern=r"^[a-z][a-z0-9_]{0,30}$",
                        description=f"the engine to run: {', '.join(ENGINES)} (GET /api/jobs/engines lists those "
                                    "this server has)", examples=list(ENGINES))
    scenario: str = Field("base", max_length=255, description="a scenario name, or 'base' (the city)")
    run: str | None = Field(None, description="the run id to save under: ASCII letters, digits, '_', '-', '.', at "
                                              "most 80, starting with a letter or digit (default: a new id)",
                            examples=["storm50"])
    params: dict[str, Any] = Field(default_factory=dict, description="engine parameters (see the engine's docs)")

    @field_validator("scenario")
    @classmethod
    def _nfc(cls, v: str) -> str:
        # in NFC like the stored names: the job, its results and the cache it clears are under that name
        return normalise_scenario_name(v)


@router.get("/engines", summary="Engines this server can run", dependencies=[Depends(require("read"))])
def engines(state=Depends(get_state)) -> list[str]:
    return state.jobs.available()


@router.post("", status_code=202, summary="Start a simulation run", dependencies=[Depends(require("simulate"))])
def start(body: JobIn, state=Depends(get_state)) -> dict:
    if len(json.dumps(body.params, default=str)) > 100_000:
        from fastapi import HTTPException

        raise HTTPException(413, "params are larger than 100 kB; pass data through the twin, not the request")
    job = state.jobs.submit(body.engine, body.scenario, body.params, run=body.run)
    return {**job.to_dict(), "status_url": f"/api/jobs/{job.id}", "events_url": f"/api/jobs/{job.id}/events"}


@router.get("", summary="Recent jobs", dependencies=[Depends(require("read"))])
def list_jobs(state=Depends(get_state)) -> list[dict]:
    return [j.to_dict() for j in state.jobs.jobs.values()]


@router.get("/{job_id}", summary="A job's status and progress", dependencies=[Depends(require("read"))])
def status(job_id: str, state=Depends(get_state)) -> dict:
    return state.jobs.get(job_id).to_dict()


@router.delete("/{job_id}", summary="Cancel a job", dependencies=[Depends(require("simulate"))])
def cancel(job_id: str, state=Depends(get_state)) -> dict:
    return state.jobs.cancel(job_id).to_dict()


@router.get("/{job_id}/events", summary="Progress as server-sent events (until the job ends)",
            dependencies=[Depends(require("read"))], response_class=StreamingResponse,
            responses={200: {"content": {"text/event-stream": {}}}})
async def events(job_id: str, request: Request, timeout: float = Query(600, gt=0, le=3600, allow_inf_nan=False),
                 state=Depends(get_state)) -> StreamingResponse:
    job = state.jobs.get(job_id)

    def wait_change(last: str) -> str:
        with job.changed:
            job.changed.wait(timeout=1.0)
        return json.dumps(job.to_dict())

    async def gen():
        last = ""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            cur = json.dumps(job.to_dict())
            if cur != last:
                yield f"event: progress\ndata: {cur}\n\n"
                last = cur
            if job.status in ("done", "failed", "cancelled"):
                yield f"event: end\ndata: {cur}\n\n"
                return
            if await request.is_disconnected() or loop.time() > deadline:
                return
            await loop.run_in_executor(None, wait_change, last)

    return StreamingResponse(gen(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})

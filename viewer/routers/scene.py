"""The scene: what the page should show first (camera, layers, rasters, results), and who is asking."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from viewer.dependencies import Principal, ScenarioQuery, current_principal, get_state, require

router = APIRouter(prefix="/api", tags=["scene"])


#: how long /api/health waits for the store while another request uses it (seconds)
HEALTH_WAIT_S = 5.0


@router.get("/health", summary="Liveness and the database (no auth)")
def health(state=Depends(get_state)):
    """200 ``{"ok": true}`` when the store answers a trivial query (PostGIS: ``SELECT 1``, reconnecting first if the
    server dropped the connection); 503 with the reason when the database cannot be reached. A store busy with
    another request for more than :data:`HEALTH_WAIT_S` seconds (a long save) is not an outage: 200 with
    ``"busy": true`` and a ``detail``, the database not checked this time."""
    from fastapi.responses import JSONResponse

    from twin_core.errors import StoreError

    store = state.store
    kind = store.raw.kind
    ping = getattr(store.raw, "ping", None)
    if ping is None:
        return {"ok": True, "store": kind}
    if not store.lock.acquire(timeout=HEALTH_WAIT_S):  # the server answers; its store is at work, not down
        return {"ok": True, "busy": True, "store": kind,
                "detail": f"the store has been busy with another request for more than {HEALTH_WAIT_S:g} s (a long "
                          "write, or a write waiting for a lock another session holds); the server is up, the "
                          "database was not checked this time: ask again later"}
    try:
        ping()
    except StoreError as exc:
        return JSONResponse({"ok": False, "store": kind, "error": "database unreachable", "detail": str(exc)},
                            status_code=503)
    finally:
        store.lock.release()
    return {"ok": True, "store": kind}


@router.get("/whoami", summary="The caller's role")
def whoami(p: Principal = Depends(current_principal)) -> dict:
    return {"role": p.role, "name": p.name, "token_id": p.token_id,
            "can": [r for r in ("read", "scenarios", "simulate", "bim", "ingest", "admin") if p.can(r)]}


@router.get("/scene", summary="Camera, layers, rasters and results for the page",
            dependencies=[Depends(require("read"))])
def scene(scenario: ScenarioQuery = "base", state=Depends(get_state)) -> dict:
    from fastapi import HTTPException

    from viewer.scene import build_scene

    if scenario not in state.twin.scenarios:
        raise HTTPException(404, f"no scenario {scenario!r}; scenarios: {['base'] + state.twin.scenarios.names()}")
    return build_scene(state, scenario)

"""The scene: what the page should show first (camera, layers, rasters, results), and who is asking."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from viewer.dependencies import Principal, ScenarioQuery, current_principal, get_state, require

router = APIRouter(prefix="/api", tags=["scene"])


@router.get("/health", summary="Liveness (no auth)")
def health(state=Depends(get_state)) -> dict:
    return {"ok": True, "store": state.store.raw.kind}


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

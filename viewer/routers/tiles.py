"""Vector tiles ``/tiles/{layer}/{z}/{x}/{y}.pbf`` (Mapbox Vector Tile 2.1) and their TileJSON."""

from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Response

from viewer.dependencies import ScenarioQuery, get_state, require
from viewer.routers.layers import check_layer
from viewer.tiles import MAX_ZOOM, tile_fields

router = APIRouter(prefix="/tiles", tags=["tiles"], dependencies=[Depends(require("read"))])

MVT = "application/vnd.mapbox-vector-tile"


def _fields(state, layer: str, info: dict, fields: str | None) -> list[str]:
    req = [f.strip() for f in fields.split(",") if f.strip()] if fields else None
    try:
        return tile_fields(layer, list(info["columns"]), req)
    except KeyError as exc:
        raise HTTPException(400, str(exc)) from None


@router.get("/{layer}/{z}/{x}/{y}.pbf", summary="One vector tile of a layer (as of a scenario)",
            response_class=Response, responses={200: {"content": {MVT: {}}}})
def tile(
    layer: str,
    z: int = Path(..., ge=0, le=MAX_ZOOM),
    x: int = Path(..., ge=0),
    y: int = Path(..., ge=0),
    scenario: ScenarioQuery = "base",
    fields: str | None = Query(None, description="comma-separated attributes to carry (default: the layer's few)"),
    state=Depends(get_state),
) -> Response:
    n = 2 ** z
    if x >= n or y >= n:
        raise HTTPException(400, f"tile {z}/{x}/{y} does not exist: at zoom {z}, x and y run from 0 to {n - 1}")
    info = check_layer(state, layer)
    if scenario != "base" and scenario not in state.twin.scenarios:
        raise HTTPException(404, f"no scenario {scenario!r}; scenarios: {['base'] + state.twin.scenarios.names()}")
    flds = _fields(state, layer, info, fields)
    data = state.tile_source.cached_tile(layer, scenario, flds, z, x, y)
    return Response(data, media_type=MVT, headers={"Cache-Control": "max-age=30"})


@router.get("/{layer}.json", summary="TileJSON describing a layer's tiles")
def tilejson(layer: str, scenario: ScenarioQuery = "base", fields: str | None = None,
             state=Depends(get_state)) -> dict:
    from viewer.geo import bounds_to

    from urllib.parse import urlencode

    info = check_layer(state, layer)
    if scenario not in state.twin.scenarios:
        raise HTTPException(404, f"no scenario {scenario!r}; scenarios: {['base'] + state.twin.scenarios.names()}")
    flds = _fields(state, layer, info, fields)
    b = info.get("bounds")
    q = "?" + urlencode({"scenario": scenario, **({"fields": ",".join(flds)} if fields else {})})
    return {
        "tilejson": "3.0.0", "name": layer, "scheme": "xyz",
        "tiles": [f"/tiles/{layer}/{{z}}/{{x}}/{{y}}.pbf{q}"],
        "minzoom": 0, "maxzoom": 16,
        "bounds": list(bounds_to(b, state.twin.crs, "EPSG:4326")) if b else None,
        "vector_layers": [{"id": layer, "fields": {f: info["columns"][f] for f in flds}}],
    }

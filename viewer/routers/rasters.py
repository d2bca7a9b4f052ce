"""Rasters (DEM, roughness, result grids): coloured PNG bitmaps in Web Mercator and point values."""

from __future__ import annotations

import math
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, HTTPException, Query, Response

from viewer.dependencies import ScenarioQuery, get_state, require
from viewer.imaging import STYLES, style_for

router = APIRouter(prefix="/api/rasters", tags=["rasters"], dependencies=[Depends(require("read"))])

STYLE_Q = Query(None, description=f"one of {list(STYLES)}; default hillshade for 'dem', value otherwise")


def check_raster(state, name: str) -> None:
    if not state.store.has_raster(name):
        raise HTTPException(404, f"no raster {name!r}; rasters here: "
                                 f"{[n for n in state.store.list_rasters() if not n.startswith('res_')]}")


def default_style(name: str, style: str | None) -> str:
    s = style or style_for(name)
    if s not in STYLES:
        raise HTTPException(400, f"style must be one of {list(STYLES)}, got {s!r}")
    return s


def render_cached(state, key, make):
    """(png, bounds, stats) cached by key."""
    return state.images.get_or_make(key, make)


def raster_image(state, raster, key, style, vmin, vmax, data=None):
    if vmin is not None and vmax is not None and not vmin < vmax:
        raise HTTPException(400, f"vmin ({vmin}) must be below vmax ({vmax})")
    if vmin is not None and vmax is not None and not abs(vmax - vmin) < 1e300:
        raise HTTPException(400, f"vmin..vmax ({vmin}..{vmax}) is too wide a range to colour")
    from viewer.imaging import render_png

    return render_cached(state, key + (style, vmin, vmax), lambda: render_png(raster, style, vmin=vmin, vmax=vmax,
                                                                           data=data))


def point_value(state, raster, lon: float, lat: float, data=None) -> dict:
    from viewer.geo import lonlat_to_twin

    x, y = lonlat_to_twin(lon, lat, raster.crs)
    inv = ~raster.transform
    c, r = inv @ (x, y)
    r, c = int(math.floor(r)), int(math.floor(c))
    arr = raster.masked() if data is None else data
    inside = 0 <= r < arr.shape[0] and 0 <= c < arr.shape[1]
    v = float(arr[r, c]) if inside else None
    if v is not None and not math.isfinite(v):
        v = None
    return {"lon": lon, "lat": lat, "x": x, "y": y, "row": r if inside else None, "col": c if inside else None,
            "value": v, "unit": raster.unit, "inside": inside}


@router.get("", summary="List the rasters")
def list_rasters(state=Depends(get_state)) -> list[dict]:
    out = []
    for n in state.store.list_rasters():
        if n.startswith("res_"):
            continue
        info = state.store.raster_info(n)
        out.append({k: info.get(k) for k in ("name", "width", "height", "unit", "bounds", "crs")})
    return out


@router.get("/{name}/meta", summary="Bounds (lon/lat) and value range of a raster bitmap")
def raster_meta(name: str, style: str | None = STYLE_Q, scenario: ScenarioQuery = "base",
                state=Depends(get_state)) -> dict:
    check_raster(state, name)
    s = default_style(name, style)
    r = state.twin.raster(name, scenario=scenario)
    _, bounds, stats = raster_image(state, r, ("raster", name, scenario), s, None, None)
    return {"name": name, "style": s, "bounds": bounds, **stats, "unit": r.unit,
            "image": f"/api/rasters/{name}/image.png?{urlencode({'style': s, 'scenario': scenario})}"}


@router.get("/{name}/image.png", summary="The raster as a coloured PNG in Web Mercator",
            response_class=Response, responses={200: {"content": {"image/png": {}}}})
def raster_png(name: str, style: str | None = STYLE_Q, scenario: ScenarioQuery = "base",
               vmin: float | None = Query(None, allow_inf_nan=False), vmax: float | None = Query(None, allow_inf_nan=False),
               state=Depends(get_state)) -> Response:
    check_raster(state, name)
    s = default_style(name, style)
    r = state.twin.raster(name, scenario=scenario)
    png, bounds, _ = raster_image(state, r, ("raster", name, scenario), s, vmin, vmax)
    return Response(png, media_type="image/png", headers={"X-Bounds": ",".join(f"{b:.8f}" for b in bounds),
                                                          "Cache-Control": "max-age=30"})


@router.get("/{name}/value", summary="The raster value at a point (lon/lat)")
def raster_value(name: str, lon: float = Query(..., ge=-180, le=180, allow_inf_nan=False),
                 lat: float = Query(..., ge=-90, le=90, allow_inf_nan=False),
                 scenario: ScenarioQuery = "base", state=Depends(get_state)) -> dict:
    check_raster(state, name)
    return point_value(state, state.twin.raster(name, scenario=scenario), lon, lat)

"""Vector layers: list, schema, features as GeoJSON (bbox and attribute filters, paging)."""

from __future__ import annotations

import math
import re
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Query

from viewer.dependencies import ScenarioQuery, get_state, require
from viewer.geo import bounds_to, frame_to_geojson, lonlat_box_to, parse_bbox

router = APIRouter(prefix="/api/layers", tags=["layers"], dependencies=[Depends(require("read"))])

_FILTER = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)\s*(!=|<=|>=|=|<|>)\s*(.*)$")
MAX_LIMIT = 10000


def check_layer(state, name: str) -> dict:
    info = state.layer_info(name) if re.match(r"^[a-z][a-z0-9_]{0,59}$", name or "") else None
    if info is None:
        raise HTTPException(404, f"no layer {name!r}; layers here: {visible_layers(state)}")
    return info


def visible_layers(state) -> list[str]:
    return [n for n in state.store.list_layers() if not n.startswith("res_")]


def parse_filters(filters: list[str], columns: dict[str, str], layer: str) -> dict[str, Any]:
    """``["use=school,office", "height_m>=30"]`` -> a store ``where`` mapping (typed by the layer's columns)."""
    where: dict[str, Any] = {}
    for f in filters:
        m = _FILTER.match(f.strip())
        if not m:
            raise HTTPException(400, f"filter {f!r} is not 'field<op>value' with op one of = != < <= > >= "
                                     "(e.g. height_m>=30 or use=school,office)")
        col, op, raw = m.groups()
        if col not in columns:
            raise HTTPException(400, f"layer {layer!r} has no field {col!r} to filter on; fields: {sorted(columns)}")
        dtype = columns[col]

        def cast(v: str):
            try:
                if dtype.startswith("int"):
                    i = int(v)
                    if not -2 ** 63 <= i < 2 ** 63:
                        raise ValueError
                    return i
                if dtype.startswith("float"):
                    x = float(v)
                    if not math.isfinite(x):
                        raise ValueError
                    return x
                if dtype == "bool":
                    return v.lower() in ("1", "true", "yes")
            except ValueError:
                raise HTTPException(400, f"filter {f!r}: {v!r} is not a {dtype} value for field {col!r}"
                                         f"{' (64-bit range)' if dtype.startswith('int') else ''}") from None
            return v

        if op == "=" and "," in raw:
            where[col] = [cast(v) for v in raw.split(",")]
        elif op == "=":
            where[col] = cast(raw)
        else:
            where[col] = (op, cast(raw))
    return where


@router.get("", summary="List the vector layers")
def list_layers(state=Depends(get_state)) -> list[dict]:
    out = []
    crs = state.twin.crs
    for n in visible_layers(state):
        info = state.store.layer_info(n)
        b = info.get("bounds")
        out.append({"name": n, "count": info["count"], "geometry_type": info["geometry_type"],
                    "bounds": b, "bounds_wgs84": list(bounds_to(b, crs, "EPSG:4326")) if b else None,
                    "crs": crs})
    return out


@router.get("/{layer}/schema", summary="Fields, types and units of a layer")
def layer_schema(layer: str, state=Depends(get_state)) -> dict:
    from cim.schema import FEATURE_CLASSES

    info = check_layer(state, layer)
    fc = FEATURE_CLASSES.get(layer)
    return {**info, "feature_class": fc.to_dict() if fc else None, "id_field": fc.id_field if fc else None}


@router.get("/{layer}/features", summary="Features as GeoJSON (lon/lat), filtered and paged")
def features(
    layer: str,
    bbox: str | None = Query(None, description="xmin,ymin,xmax,ymax (in bbox_crs)", examples=["104.05,30.64,104.07,30.66"]),
    bbox_crs: str = Query("wgs84", pattern="^(wgs84|twin)$", description="CRS of bbox: wgs84 (lon/lat) or twin"),
    filter: list[str] = Query([], description="field<op>value, op in = != < <= > >=; 'use=a,b' for one of"),
    columns: str | None = Query(None, description="comma-separated fields to return"),
    limit: int = Query(1000, ge=1, le=MAX_LIMIT),
    offset: int = Query(0, ge=0, le=10_000_000),
    crs: str = Query("wgs84", pattern="^(wgs84|twin)$", description="CRS of the output geometry"),
    scenario: ScenarioQuery = "base",
    state=Depends(get_state),
) -> dict:
    info = check_layer(state, layer)
    try:
        box = parse_bbox(bbox)
    except ValueError as exc:
        raise HTTPException(400, str(exc)) from None
    twin_crs = state.twin.crs
    if box is not None and bbox_crs == "wgs84":
        if not (-180 <= box[0] <= 180 and -180 <= box[2] <= 180 and -90 <= box[1] <= 90 and -90 <= box[3] <= 90):
            raise HTTPException(400, f"bbox {bbox!r} is not longitude/latitude; give bbox_crs=twin for twin coordinates")
        box = lonlat_box_to(box, twin_crs)
        if box is None:  # the box misses the area the twin's CRS covers: no feature can be in it
            return {"type": "FeatureCollection", "features": [], "numberReturned": 0, "offset": offset,
                    "next_offset": None}
    where = parse_filters(filter, info["columns"], layer)
    cols = None
    if columns:
        cols = [c.strip() for c in columns.split(",") if c.strip()]
        bad = [c for c in cols if c not in info["columns"]]
        if bad:
            raise HTTPException(400, f"layer {layer!r} has no field(s) {bad}; fields: {sorted(info['columns'])}")
    gdf = state.twin.layer(layer, scenario=scenario, bbox=box, where=where or None, columns=cols,
                           limit=limit, offset=offset)
    fc = frame_to_geojson(gdf, twin_crs, to="EPSG:4326" if crs == "wgs84" else twin_crs)
    fc["numberReturned"] = len(gdf)
    fc["offset"] = offset
    fc["next_offset"] = offset + limit if len(gdf) == limit else None
    return fc


@router.get("/{layer}/features/{feature_id}", summary="One feature by its id (all attributes)")
def feature(layer: str, feature_id: str, scenario: ScenarioQuery = "base", state=Depends(get_state)) -> dict:
    from cim.schema import FEATURE_CLASSES

    info = check_layer(state, layer)
    idf = FEATURE_CLASSES[layer].id_field if layer in FEATURE_CLASSES else ("id" if "id" in info["columns"] else None)
    if idf is None:
        raise HTTPException(400, f"layer {layer!r} has no id field; query features with a filter instead")
    value: Any = feature_id
    if info["columns"].get(idf, "str").startswith("int"):
        try:
            value = int(feature_id)
        except ValueError:
            raise HTTPException(400, f"{idf} of {layer!r} is an integer, got {feature_id!r}") from None
    gdf = state.twin.layer(layer, scenario=scenario, where={idf: value})
    if not len(gdf):
        raise HTTPException(404, f"no feature {idf}={feature_id!r} in {layer!r} (scenario {scenario!r})")
    fc = frame_to_geojson(gdf.iloc[:1], state.twin.crs)
    f = fc["features"][0]
    f["id"] = feature_id
    f["layer"] = layer
    return f

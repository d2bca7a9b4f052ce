"""Scene building: the camera and the catalogue of layers, rasters, results and meshes the page starts from.

Examples
--------
>>> cam = camera_for((104.05, 30.63, 104.09, 30.66))
>>> round(cam["longitude"], 2), round(cam["latitude"], 3), cam["pitch"]
(104.07, 30.645, 45)
>>> 14 < cam["zoom"] < 16
True
"""

from __future__ import annotations

import math

from viewer.geo import bounds_to

__all__ = ["build_scene", "camera_for"]


def camera_for(bounds_wgs84, width_px: int = 1280) -> dict:
    """A view state that frames ``bounds`` (lon/lat), pitched for 3D."""
    w, s, e, n = bounds_wgs84
    lon, lat = (w + e) / 2, (s + n) / 2
    span_m = max((e - w) * 111320 * math.cos(math.radians(lat)), (n - s) * 110540, 50.0)
    # metres per pixel at deck.gl zoom z: 156543 * cos(lat) / 2**(z + 1)
    z = math.log2(156543.03 * math.cos(math.radians(lat)) * width_px / span_m) - 1  # deck.gl: 512-px tiles
    return {"longitude": lon, "latitude": lat, "zoom": round(min(max(z, 3.0), 19.0), 2), "pitch": 45, "bearing": 0}


def build_scene(state, scenario: str = "base") -> dict:
    """Everything the page needs to set itself up, in one JSON."""
    from viewer.routers.results import mark_stale, result_catalogue

    twin = state.twin
    store = state.store
    index = store.get_meta()  # the results index, read once for the catalogue, its runs' lines and the stale chain
    crs = twin.crs
    layers = [n for n in store.list_layers() if not n.startswith("res_")]
    infos = {n: store.layer_info(n) for n in layers}
    ext = index.get("extent") or twin.extent  # the metadata's (read above), else the layers' and rasters' bounds
    bounds = list(bounds_to(ext, crs, "EPSG:4326")) if ext else [103.9, 30.5, 104.2, 30.8]
    rasters = [n for n in store.list_rasters() if not n.startswith("res_")]
    from viewer.routers.meshes import mesh_catalogue

    meshes = mesh_catalogue(state)
    areas = []
    if "areas" in layers:
        a = store.read_layer("areas", columns=[c for c in ("area_id", "kind", "name") if c in infos["areas"]["columns"]])
        areas = a.drop(columns=[a.geometry.name]).head(200).to_dict("records")
    return {
        "name": index.get("name", ""),
        "areas": areas,
        "crs": crs,
        "bounds": bounds,
        "camera": camera_for(bounds),
        "scenario": scenario,
        "scenarios": ["base"] + twin.scenarios.names(),
        "layers": {n: {"count": infos[n]["count"], "geometry_type": infos[n]["geometry_type"],
                       "columns": infos[n]["columns"]} for n in layers},
        "rasters": rasters,
        "results": mark_stale(state, result_catalogue(state, about=True, meta=index), index),
        "meshes": meshes,
        "tiles": {"url": "/tiles/{layer}/{z}/{x}/{y}.pbf", "minzoom": 12, "maxzoom": 16,
                  "worker_url": "/static/vendor/mvt-worker.js"},
    }

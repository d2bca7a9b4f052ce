"""BIM meshes: glTF binary (GLB) per building or storey, placed on the map."""

from __future__ import annotations



from fastapi import APIRouter, Depends, HTTPException, Query, Response

from viewer.dependencies import get_state, require

router = APIRouter(prefix="/api/meshes", tags=["meshes"], dependencies=[Depends(require("read"))])

GLB = "model/gltf-binary"


def mesh_catalogue(state, building_id: str | None = None) -> list[dict]:
    """One entry per GLB blob: key, building, storey, origin (lon/lat); axes x east, y north, z up (m)."""
    from viewer.geo import transformer

    store = state.store
    blobs = store.list_blobs("bim/")
    if not len(blobs):
        return []
    origins: dict[str, tuple[float, float]] = {}
    if store.has_table("bim_buildings"):
        t = store.read_table("bim_buildings", columns=["building_id", "origin_x", "origin_y"])
        origins = {str(r.building_id): (float(r.origin_x), float(r.origin_y)) for r in t.itertuples(index=False)}
    tr = transformer(state.twin.crs, "EPSG:4326")
    ground: dict[str, float] = {}
    ids = sorted({str(f) for f in blobs["feature_id"].dropna()})
    if ids and store.has_layer("buildings"):
        cols = store.layer_info("buildings")["columns"]
        if "ground_elev_m" in cols:
            g = store.read_layer("buildings", where={"building_id": ids}, columns=["building_id", "ground_elev_m"])
            ground = {str(a): float(b) for a, b in zip(g["building_id"], g["ground_elev_m"]) if b == b}
    out = []
    for r in blobs.itertuples(index=False):
        if r.mime != GLB:
            continue
        bid = str(r.feature_id) if r.feature_id is not None else r.key.split("/")[1]
        if building_id is not None and bid != building_id:
            continue
        o = origins.get(bid)
        lonlat = list(tr.transform(*o)) if o else None
        storey = r.key.split("/storey/", 1)[1][:-4] if "/storey/" in r.key else None
        out.append({"key": r.key, "building_id": bid, "storey": storey, "size": int(r.size),
                    "origin": lonlat, "ground_elev_m": ground.get(bid, 0.0), "url": f"/api/meshes/glb/{r.key}"})
    return out


@router.get("", summary="List the BIM meshes (GLB) with their origins")
def list_meshes(building_id: str | None = Query(None, max_length=200), state=Depends(get_state)) -> list[dict]:
    return mesh_catalogue(state, building_id)


@router.get("/glb/{key:path}", summary="One GLB mesh", response_class=Response,
            responses={200: {"content": {GLB: {}}}})
def get_glb(key: str, state=Depends(get_state)) -> Response:
    if not key.startswith("bim/") or not key.endswith(".glb") or ".." in key:
        raise HTTPException(404, f"no mesh {key!r}; mesh keys look like bim/<building_id>/building.glb (see /api/meshes)")
    try:
        data = state.store.get_blob(key)
    except KeyError:
        raise HTTPException(404, f"no mesh {key!r}; see /api/meshes for the list") from None
    return Response(data, media_type=GLB, headers={"Cache-Control": "max-age=300"})



"""Camera bookmarks kept in the twin, shared by everyone who opens its map.

A bookmark saved in one browser used to stay in that browser (``localStorage``): the command centre's
"river bend", "station forecourt" views had to be saved again on every screen. Shared bookmarks live in the
twin's table ``camera_bookmarks`` (both stores); planners and admins (the right ``scenarios``) save and
remove them, everyone who may read the map sees them. A browser may still keep its own.
"""

from __future__ import annotations

import unicodedata
import uuid
from datetime import datetime, timezone

from fastapi import APIRouter, Depends, HTTPException, Path, Response
from pydantic import BaseModel, Field, field_validator

from viewer.dependencies import Principal, get_state, require
from viewer.limits import LimitedRoute

router = APIRouter(prefix="/api/bookmarks", tags=["bookmarks"], route_class=LimitedRoute)

TABLE = "camera_bookmarks"
MAX_BOOKMARKS = 200  # a list people pick from, not a log
_COLUMNS = ["bookmark_id", "name", "longitude", "latitude", "zoom", "pitch", "bearing", "created", "created_by"]


class View(BaseModel):
    """Where the camera looks: deck.gl's view state in lon/lat degrees."""

    longitude: float = Field(..., ge=-180, le=180, allow_inf_nan=False)
    latitude: float = Field(..., ge=-85.06, le=85.06, allow_inf_nan=False)  # Web Mercator's limit
    zoom: float = Field(..., ge=0, le=24, allow_inf_nan=False)
    pitch: float = Field(0.0, ge=0, le=85, allow_inf_nan=False)
    bearing: float = Field(0.0, ge=-360, le=360, allow_inf_nan=False)


class BookmarkIn(BaseModel):
    name: str = Field(..., min_length=1, max_length=60, description="what the view shows, as people call it",
                      examples=["九眼桥 river bend", "station forecourt"])
    view: View

    @field_validator("name")
    @classmethod
    def _printable(cls, v: str) -> str:
        v = unicodedata.normalize("NFC", v).strip()
        if not v:
            raise ValueError("the name is blank; give what the view shows, e.g. 'station forecourt'")
        bad = [c for c in v if unicodedata.category(c)[0] == "C"]
        if bad:
            raise ValueError(f"the name holds a control or invisible character ({unicodedata.name(bad[0], hex(ord(bad[0])))}); "
                             "use letters, digits, spaces and punctuation")
        return v


def _rows(state) -> list[dict]:
    if not state.store.has_table(TABLE):
        return []
    df = state.store.read_table(TABLE, order_by="created")
    return [{"id": str(r["bookmark_id"]), "name": str(r["name"]),
             "view": {k: float(r[k]) for k in ("longitude", "latitude", "zoom", "pitch", "bearing")},
             "created": str(r["created"]), "created_by": str(r["created_by"] or "")} for r in df.to_dict("records")]


@router.get("", summary="The twin's shared camera bookmarks, oldest first", dependencies=[Depends(require("read"))])
def list_bookmarks(state=Depends(get_state)) -> list[dict]:
    return _rows(state)


@router.post("", status_code=201, summary="Save the view as a bookmark everyone sees")
def save_bookmark(body: BookmarkIn, state=Depends(get_state), who: Principal = Depends(require("scenarios"))) -> dict:
    import pandas as pd

    v = body.view
    row = {"bookmark_id": uuid.uuid4().hex[:16], "name": body.name, "longitude": v.longitude,
           "latitude": v.latitude, "zoom": v.zoom, "pitch": v.pitch, "bearing": v.bearing,
           "created": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
           "created_by": f"{who.role}:{who.name}"[:120]}
    # the count and the append under the table's write lock (PostGIS: its advisory lock, GeoPackage: the file's):
    # two savers cannot pass the cap nor both take a name (transaction() first: LockedStore holds its thread lock
    # for the whole block)
    with state.store.transaction(), state.store.lock_table(TABLE):
        have = _rows(state)
        if len(have) >= MAX_BOOKMARKS:
            raise HTTPException(409, f"the twin already keeps {MAX_BOOKMARKS} bookmarks; remove some first "
                                     "(DELETE /api/bookmarks/{id})")
        if any(b["name"] == body.name for b in have):
            raise HTTPException(409, f"a bookmark is already called {body.name!r}; pick another name or remove it")
        # append creates the table when missing; a replace dropped the table another saver had just made
        state.store.write_table(TABLE, pd.DataFrame([row], columns=_COLUMNS), mode="append")
    return {"id": row["bookmark_id"], "name": row["name"], "view": v.model_dump(), "created": row["created"],
            "created_by": row["created_by"]}


@router.delete("/{bookmark_id}", status_code=204, summary="Remove a shared bookmark",
               dependencies=[Depends(require("scenarios"))])
def delete_bookmark(bookmark_id: str = Path(..., pattern=r"^[0-9a-f]{16}$",
                                            description="the id from GET /api/bookmarks (16 hex digits)"),
                    state=Depends(get_state)) -> Response:
    n = state.store.delete_rows(TABLE, {"bookmark_id": bookmark_id}) if state.store.has_table(TABLE) else 0
    if not n:
        raise HTTPException(404, f"no bookmark {bookmark_id!r}; GET /api/bookmarks lists them")
    return Response(status_code=204)

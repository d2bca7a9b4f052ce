"""Scenarios: named sets of edits over the base city, never touching the base.

Edits are recorded in order in the store table ``scenario_edits`` (one row an
edit) and applied on read: :meth:`Scenario.layer` and :meth:`Scenario.raster`
return the layer or raster "as of" the scenario. Raster patches keep what they
change in ``.npy`` blobs (the cells a delta raises, or the values set) with their
kind and grid, so that they hold on a base updated later. Both stores hold
scenarios the same way.

A scenario name is letters and digits of any script, ``_`` and ``-``, starting
with a letter or digit, at most 63 characters: ``levee_2m``, ``暴雨50年`` and
``二环路封闭`` are names; spaces, punctuation such as ``:`` ``/`` ``.``, and
invisible characters (zero-width joiners, direction overrides, a BOM) are not.
Names are kept in Unicode NFC, so one name typed two ways (``café`` with an
accented letter or with a combining accent) is one scenario; every lookup
normalises the same way. ``base`` (the city itself) and ``diff`` (an API
route) are reserved in any case. :func:`check_scenario_name` is the check.

Examples
--------
>>> import tempfile, os, geopandas as gpd, shapely
>>> from cim.store import open_store
>>> store = open_store(os.path.join(tempfile.mkdtemp(), "s.gpkg"), create=True, crs="EPSG:4544")
>>> # metres in EPSG:4544 (CGCS2000 GK CM105E): central Chengdu; edits outside the CRS's area are refused
>>> pois = gpd.GeoDataFrame({"poi_id": ["a"], "kind": ["shelter"]}, geometry=[shapely.Point(409907, 3393657)],
...                         crs="EPSG:4544")
>>> _ = store.write_layer("pois", pois)
>>> scenarios = Scenarios(store)
>>> s = scenarios.create("new_shelter", "one more shelter")
>>> s.add_features("pois", gpd.GeoDataFrame({"poi_id": ["b"], "kind": ["shelter"]},
...                                          geometry=[shapely.Point(410200, 3393900)], crs="EPSG:4544"))
>>> sorted(s.layer("pois")["poi_id"]), sorted(store.read_layer("pois")["poi_id"])
(['a', 'b'], ['a'])
>>> store.close()
"""

from __future__ import annotations

import io
import json
import re
import threading
import unicodedata
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Iterable

import numpy as np
import pandas as pd

from cim.raster import Raster, Window
from cim.schema import FEATURE_CLASSES, cast_value
from twin_core.errors import RasterError, ScenarioError

__all__ = ["Scenarios", "Scenario", "OutsideAreaError", "EDITS_TABLE", "BASE", "RESERVED", "MAX_NAME_LENGTH", "check_scenario_name",
           "normalise_scenario_name", "did_you_mean", "raster_edit_kind"]

EDITS_TABLE = "scenario_edits"
BASE = "base"
# not scenario names, in any case: 'base' is the city itself, 'diff' the route /api/scenarios/diff
RESERVED = (BASE, "diff")
MAX_NAME_LENGTH = 63
# \w of a str pattern is Unicode: the letters and digits of every script, and '_'; [^\W_] is \w without the '_'
_NAME_CHAR = re.compile(r"[\w\-]")
_NAME = re.compile(rf"[^\W_][\w\-]{{0,{MAX_NAME_LENGTH - 1}}}\Z")
_NAME_RULE = (f"a scenario name is letters and digits of any script, '_' and '-', starts with a letter or digit and "
              f"has at most {MAX_NAME_LENGTH} characters (e.g. 'levee_2m' or '暴雨50年')")
_OPS = ("add", "remove", "modify", "patch_raster", "set_param")


def _now() -> str:
    return datetime.now(timezone.utc).isoformat()


def _lonlat_hint(bounds, crs, polygon: bool, *, features: bool = False) -> str:
    """``"; ... look like longitude/latitude: transform ..."`` when ``bounds`` look like degrees, else ``""``.

    ``features``: the bounds are of a GeoDataFrame's geometries (an edit's features), not of a polygon or bounds.
    """
    from cim.crs import looks_like_lonlat

    if not looks_like_lonlat(bounds):
        return ""
    if features:
        how = f"gdf.set_crs('EPSG:4326', allow_override=True).to_crs({crs!r})"
        what = "the features' coordinates"
    else:
        how = (f"shapely.ops.transform(pyproj.Transformer.from_crs('EPSG:4326', {crs!r}, always_xy=True).transform, "
               "polygon)" if polygon else
               f"pyproj.Transformer.from_crs('EPSG:4326', {crs!r}, always_xy=True).transform_bounds(*bounds)")
        what = "the polygon's coordinates" if polygon else "bounds"
    return (f"; {what} are read in the twin's CRS {crs} (metres), and these look like longitude/latitude: "
            f"transform them first, e.g. {how}")


def _warn_partly_outside(bounds, base, name: str) -> None:
    """Warn when an edit's box reaches past the raster: only the part on the raster changes."""
    xmin, ymin, xmax, ymax = (float(v) for v in bounds)
    bx0, by0, bx1, by1 = base.bounds
    area = (xmax - xmin) * (ymax - ymin)
    inside = max(0.0, min(xmax, bx1) - max(xmin, bx0)) * max(0.0, min(ymax, by1) - max(ymin, by0))
    if area > 0 and inside < area * (1.0 - 1e-9):
        from twin_core.errors import TwinWarning, twin_warn

        twin_warn(f"the edit's box {tuple(bounds)} reaches past the {name!r} raster {base.bounds}: "
                  f"{100.0 * (1.0 - inside / area):.1f} % of it ({area - inside:,.0f} of {area:,.0f} square units) "
                  "is outside and was left out; only the part on the raster changes. Clip the box to the raster "
                  "to silence this", TwinWarning, stacklevel=3)


#: a polygon edit narrower than this many cells (in places) is widened to every cell it touches
THIN_EDIT_CELLS = 1.5


def _polygon_cells(poly, sub, name: str) -> np.ndarray:
    """The cells of window raster ``sub`` a polygon edit changes: those whose centre lies inside it, and, where
    the polygon is narrower than :data:`THIN_EDIT_CELLS` cells (a levee 2 m wide on a 5 m grid), every cell it
    touches, with a warning. By centres alone such a strip raised a chain of cells with gaps (a diagonal line
    touches cells whose centres it misses), and water crossed the levee through them; every touched cell
    makes the strip 8-connected, and water, which moves between cells through their faces, cannot cross an
    8-connected wall. The map's draw tool refuses a levee under 5 m and 1.5 cells; the Python API takes any."""
    from rasterio.features import geometry_mask

    inside = geometry_mask([poly], out_shape=sub.shape, transform=sub.transform, invert=True)
    cell = min(abs(float(sub.transform.a)), abs(float(sub.transform.e)))
    r = THIN_EDIT_CELLS * cell / 2.0 * (1.0 - 1e-3)  # a strip of 1.5 cells (to 0.1 %) is not thin
    # the parts of the polygon an opening by half of 1.5 cells removes: narrower than 1.5 cells (mitred, so a
    # box's corners are not thin; slivers under a tenth of a cell left out)
    opened = poly.buffer(-r, join_style="mitre").buffer(r, join_style="mitre")
    thin = poly.difference(opened)
    if thin.is_empty or thin.area < 0.1 * cell * cell:
        return inside
    touched = geometry_mask([thin], out_shape=sub.shape, transform=sub.transform, invert=True, all_touched=True)
    added = touched & ~inside
    if added.any():
        from twin_core.errors import TwinWarning, twin_warn

        twin_warn(f"the edit's polygon is narrower than {THIN_EDIT_CELLS:g} cells ({THIN_EDIT_CELLS * cell:g} m) in "
                  f"places: it was widened there to every cell of {name!r} it touches ({int(added.sum())} cells "
                  f"besides the {int(inside.sum())} whose centre it covers), so that it leaves no gap water can "
                  f"pass between cells. Draw it at least {THIN_EDIT_CELLS * cell:g} m wide to change only the cells "
                  "it covers", TwinWarning, stacklevel=3)
    return inside | touched


def _check_edit_polygon(poly, raster: str, *, kind: str = "edit") -> None:
    """Refuse a polygon that is not a valid, non-empty (Multi)Polygon for an edit of raster ``raster`` (or,
    ``kind="road closure"``, a :meth:`Scenario.close_roads` of layer ``raster``).

    A self-intersecting ("bow-tie") polygon is refused, not repaired: ``shapely.make_valid`` would turn it into
    the pieces its crossing edges cut out, which for a ring drawn with two corners swapped is not the area the
    user meant, and the raised or lowered ground changes every flood run of the scenario without a word. A
    feature's geometry is refused the same way (:func:`_check_geometries`); the message says where the edges
    cross and how to fix it.
    """
    import shapely

    if not hasattr(poly, "geom_type"):
        raise ScenarioError(f"the {kind} of {raster!r} needs a shapely Polygon or MultiPolygon, got "
                            f"{type(poly).__name__}; e.g. shapely.box(xmin, ymin, xmax, ymax)")
    if poly.geom_type not in ("Polygon", "MultiPolygon") or poly.is_empty:
        raise ScenarioError(f"the {kind} of {raster!r} needs a non-empty Polygon or MultiPolygon, got "
                            f"{'an empty ' if poly.is_empty else 'a '}{poly.geom_type}")
    if shapely.is_valid(poly):
        return
    reason = shapely.is_valid_reason(poly)
    m = re.match(r"([^\[]+)\[([^\]]+)\]", reason)
    what, at = (m.group(1), m.group(2).split()) if m else (reason, None)
    where = f" at ({', '.join(f'{float(v):.10g}' for v in at)})" if at and len(at) == 2 else ""
    crossing = "self-intersection" in what.lower()
    raise ScenarioError(
        f"the polygon for the {kind} of {raster!r} is not valid: {what.strip().lower()}{where}"
        + (" (its outline crosses itself, a 'bow-tie': two corners are in the wrong order)" if crossing else "")
        + "; nothing was recorded. Redraw it so that its outline does not cross itself (give the corners in order "
        "around the area), or, if the pieces shapely makes of it are what you mean, repair it first and check "
        "the result: shapely.make_valid(polygon)")


def _off_the_raster(bounds, base, raster: str, *, polygon: bool) -> str:
    """Why an edit's polygon or bounds do not overlap raster ``raster`` (``base``), in the user's terms: where
    the edit is and where the raster is, in the twin's CRS and in lon/lat, and what to do (the lon/lat hint
    of :func:`_lonlat_hint` where the numbers look like degrees)."""
    from cim.crs import fmt_box, lonlat_box

    what = "the polygon" if polygon else "the bounds"
    whose = "the polygon's bounds" if polygon else "the bounds"
    crs = base.crs
    hint = _lonlat_hint(bounds, crs, polygon=polygon)

    def lonlat(box) -> str:
        if crs is None:
            return ""
        try:
            ll = lonlat_box(box, crs)
        except Exception:  # a box far outside what the CRS can take back to degrees
            ll = None
        return f", lon/lat {fmt_box(tuple(round(v, 5) for v in ll))}" if ll is not None else ""

    far = "" if hint else lonlat(bounds)
    msg = (f"{whose} {fmt_box(bounds)}{far} do not overlap the raster {raster!r} {fmt_box(base.bounds)} (in the "
           f"twin's CRS {crs}{lonlat(base.bounds)}): {what} of the edit {'lies' if polygon else 'lie'} outside the "
           "city; nothing was recorded")
    if hint:
        return msg + hint
    how = (f"shapely.ops.transform(pyproj.Transformer.from_crs(SOURCE_CRS, {crs!r}, always_xy=True).transform, "
           "polygon)" if polygon else
           f"pyproj.Transformer.from_crs(SOURCE_CRS, {crs!r}, always_xy=True).transform_bounds(*bounds)")
    return (msg + f". Give {what} in the twin's CRS {crs} (metres), inside the city; coordinates in another "
            f"CRS (web-map metres, EPSG:3857, or another city's grid) must be transformed first, e.g. {how}; drawn on "
            "the map, draw inside the city")


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def _short(text, n: int) -> str:
    """``text`` as one line of at most ``n`` characters (an ellipsis where it was cut)."""
    text = " ".join(str(text if text is not None else "").split())
    return text if len(text) <= n else text[:n - 1] + "\u2026"


def _when(iso) -> str:
    """An ISO time as ``2026-12-04 22:30 UTC`` (minutes), or ``""``."""
    if iso is None or (isinstance(iso, float) and np.isnan(iso)):
        return ""
    try:
        return pd.Timestamp(iso).tz_convert("UTC").strftime("%Y-%m-%d %H:%M UTC")
    except (TypeError, ValueError):
        return str(iso)


def normalise_scenario_name(name):
    r"""``name`` in Unicode NFC, the form scenario names are checked, stored and looked up in.

    Anything that is not a string is returned as it is (the checks that follow refuse it).

    Examples
    --------
    >>> normalise_scenario_name("cafe\u0301") == "caf\u00e9"
    True
    """
    return unicodedata.normalize("NFC", name) if isinstance(name, str) else name


def did_you_mean(name, choices) -> str:
    """``"; did you mean 'x'?"`` for the choice closest to a mistyped ``name``, or ``""`` when none is close.

    Examples
    --------
    >>> did_you_mean("storm-rush", ["storm_rush", "levee"])
    "; did you mean 'storm_rush'?"
    >>> did_you_mean("xyz", ["storm_rush"])
    ''
    """
    import difflib

    if not isinstance(name, str):
        return ""
    choices = [str(c) for c in choices]
    near = difflib.get_close_matches(name, choices, n=1, cutoff=0.6)
    if not near:  # a case slip ('Levee' for 'levee') is not always close enough by ratio
        near = [c for c in choices if c.casefold() == name.casefold()][:1]
    return f"; did you mean {near[0]!r}?" if near else ""


def _char(c: str) -> str:
    return f"{c!r} (U+{ord(c):04X} {unicodedata.name(c, unicodedata.category(c))})"


def check_scenario_name(name, *, allow_base: bool = False) -> str:
    """``name`` in NFC if it may name a scenario, else a :class:`ScenarioError` saying why.

    ``allow_base`` lets ``"base"`` itself through (results are kept under it); its other spellings
    (``"Base"``) and ``"diff"`` stay reserved.

    Examples
    --------
    >>> check_scenario_name("暴雨50年")
    '暴雨50年'
    >>> check_scenario_name("road:closed")
    Traceback (most recent call last):
    ...
    twin_core.errors.ScenarioError: scenario name 'road:closed' is not valid: it holds ':' (U+003A COLON); ...
    """
    if not isinstance(name, str):
        raise ScenarioError(f"a scenario name must be a string, got {type(name).__name__} {name!r}; {_NAME_RULE}")
    name = normalise_scenario_name(name)
    if not _NAME.match(name):
        bad = list(dict.fromkeys(c for c in name if not _NAME_CHAR.match(c)))
        if not name:
            why = "it is empty"
        elif bad:
            why = "it holds " + ", ".join(_char(c) for c in bad[:5])
        elif len(name) > MAX_NAME_LENGTH:
            why = f"it has {len(name)} characters"
        else:
            why = f"it starts with {name[0]!r}"
        raise ScenarioError(f"scenario name {name!r} is not valid: {why}; {_NAME_RULE}")
    if name.casefold() in RESERVED and not (allow_base and name == BASE):
        raise ScenarioError(f"scenario name {name!r} is reserved ({' and '.join(map(repr, RESERVED))} in any case "
                            "are not scenario names); choose another name")
    return name


def id_field_of(layer: str, gdf=None) -> str:
    if layer in FEATURE_CLASSES:
        return FEATURE_CLASSES[layer].id_field
    if gdf is not None and "id" in gdf.columns:
        return "id"
    raise ScenarioError(
        f"layer {layer!r} is not a declared feature class, so features cannot be matched; give it an 'id' column"
    )


class Scenarios:
    """The scenarios of one store: create, list, get, diff, delete."""

    #: a check of a parameter's value before :meth:`Scenario.set_param` records it, ``check(key, value,
    #: scenario)`` raising on a value the engines would not take (None: none; the twin sets the engines' own)
    param_check = None

    def __init__(self, store) -> None:
        self.store = store
        # the identity (_edit_log_id) of the edit log last seen with its unique seq index, once committed:
        # the next edits skip the index lookup while the table is that one (see _unique_seq)
        self._seq_unique_id: Any = None

    def _meta(self) -> dict[str, dict]:
        return {k.split(":", 1)[1]: v for k, v in self.store.get_meta().items() if k.startswith("scenario:")}

    def list(self) -> pd.DataFrame:
        """A table of scenarios: name, description, parent, created, edits, rows, last_edited.

        ``edits`` counts a scenario's own edits as a planner makes them and :meth:`Scenario.undo` takes them
        back, one a call (closing the roads in an area, adding three shelters at once, raising the ground:
        one edit each), as the reprs and the map count them; ``rows`` counts the rows they wrote to the edit
        log (one a feature added, removed or changed: the roads closing an area closed).
        """
        meta = self._meta()
        # two columns only: every map screen asks for this list every 15 s, and added features carry geometry
        e = (self.store.read_table(EDITS_TABLE, columns=["scenario", "created"])
             if meta and self.store.has_table(EDITS_TABLE) else pd.DataFrame(columns=["scenario", "created"]))
        counts = e.groupby("scenario")["created"].nunique()  # the rows one call records share its time
        n_rows = e.groupby("scenario").size()
        latest = (pd.to_datetime(e["created"], utc=True, format="ISO8601").groupby(e["scenario"]).max()
                  if len(e) else pd.Series(dtype="datetime64[ns, UTC]"))
        rows = []
        for n, m in sorted(meta.items()):
            times = [t for t in (latest.get(n), self._modified([n], meta)) if t is not None and not pd.isna(t)]
            rows.append({"name": n, "description": m.get("description", ""), "parent": m.get("parent", BASE),
                         "created": m.get("created"), "edits": int(counts.get(n, 0)),
                         "rows": int(n_rows.get(n, 0)),
                         # its own latest edit or undo (a parent's edits change it too: see Scenario.last_edited)
                         "last_edited": max(times).isoformat() if times else None})
        return pd.DataFrame(rows, columns=["name", "description", "parent", "created", "edits", "rows",
                                           "last_edited"])

    def names(self) -> list[str]:
        return sorted(self._meta())

    def create(self, name: str, description: str = "", *, parent: str = BASE, exist_ok: bool = False,
               replace: bool = False, warn_if_edited: bool = True) -> "Scenario":
        """Create a scenario on the base (or on another scenario ``parent``).

        ``name`` is checked by :func:`check_scenario_name` and stored in NFC. A name that exists already is
        refused (the error says how to reuse or replace it), unless:

        - ``exist_ok=True``: the existing scenario is returned as it is (its description and parent are
          kept: a ``description`` or ``parent`` given that differs from them draws a
          :class:`~twin_core.errors.TwinWarning` naming both; left at their defaults, none) and what you
          record through it *adds* to its edits. A notebook cell that creates a scenario
          and raises the ground with ``patch_raster(..., delta=2.0)``, run twice, raises it by 4 m: when the
          scenario has edits already a :class:`~twin_core.errors.TwinWarning` says so, unless
          ``warn_if_edited=False`` (the ``twin`` command's edit commands add to an existing scenario, or
          create it with its first edit, by design).
        - ``replace=True``: the existing scenario is deleted as :meth:`delete` does it (its edits and its
          stored results, which were made on the old definition) and created anew, empty, in one
          transaction: a cell with ``replace=True`` can be run again and again. A scenario that is the
          parent of others is not replaced (delete those first).

        Examples
        --------
        >>> import tempfile, os
        >>> from cim.store import open_store
        >>> store = open_store(os.path.join(tempfile.mkdtemp(), "c.gpkg"), create=True, crs="EPSG:4544")
        >>> sc = Scenarios(store)
        >>> sc.create("levee", "a 2 m levee").set_param("height_m", 2)
        >>> sc.create("levee")
        Traceback (most recent call last):
        ...
        twin_core.errors.ScenarioError: scenario 'levee' exists already (1 edit...
        >>> len(sc.create("levee", "a 2 m levee", replace=True).edits())
        0
        >>> store.close()
        """
        name = check_scenario_name(name)
        parent = normalise_scenario_name(parent)
        if exist_ok and replace:
            raise ScenarioError("give exist_ok=True (reuse the scenario, adding to its edits) or replace=True "
                                "(delete it and start afresh), not both")
        meta = self._meta()
        if name in meta and replace:
            with self.store.transaction():  # deleted and re-created together: a failure leaves the old one
                self.delete(name)
                return self.create(name, description, parent=parent)
        if name in meta:
            n_edits, summary = self._edit_summary(name)
            if not exist_ok:
                raise ScenarioError(
                    f"scenario {name!r} exists already ({_plural(n_edits, 'edit')}"
                    f"{': ' + summary if summary else ''}); pick another name, or delete it first. In Python, "
                    f"create({name!r}, exist_ok=True) returns it to add edits to, and create({name!r}, ..., "
                    "replace=True) deletes it (its edits and stored results) and makes it anew")
            from twin_core.errors import TwinWarning, twin_warn

            kept = meta[name]
            differ = [(what, given, kept.get(what, default)) for what, given, default in
                      (("description", description, ""), ("parent", parent, BASE))
                      if given != default and given != kept.get(what, default)]
            if differ:  # a description or parent given on purpose would be dropped without a word
                twin_warn(f"scenario {name!r} exists already and exist_ok=True returns it as it is: "
                          + "; ".join(f"its {what} {old!r} is kept, not the {what} {new!r} given here"
                                      for what, new, old in differ)
                          + ". To start afresh with these, create it with replace=True (deletes its edits and "
                          "results); or pick another name", TwinWarning)
            if n_edits and warn_if_edited:
                twin_warn(f"scenario {name!r} exists already with {_plural(n_edits, 'edit')} ({summary}); "
                          "exist_ok=True reuses it, so the edits you record now add to those: a cell that "
                          "raises the ground by 2 m, run twice, raises it by 4 m. To start afresh create it with "
                          f"replace=True (deletes its edits and results); scenarios[{name!r}].undo() takes back "
                          "the latest edit", TwinWarning)
            return Scenario(self, name)
        if parent != BASE and parent not in meta:
            raise ScenarioError(f"parent scenario {parent!r} does not exist; scenarios: {sorted(meta)}"
                                + did_you_mean(parent, sorted(meta)))
        self.store.set_meta({f"scenario:{name}": {"description": description, "parent": parent, "created": _now()}})
        return Scenario(self, name)

    def _edit_summary(self, name: str) -> tuple[int, str]:
        """How many edits (calls, as :meth:`Scenario.undo` takes them back) ``name`` has of its own, and a short
        text of them: ``"patch_raster dem, modify road_links (12 rows)"``."""
        if not self.store.has_table(EDITS_TABLE):
            return 0, ""
        e = self.store.read_table(EDITS_TABLE, where={"scenario": name}, columns=["op", "target", "created"])
        if not len(e):
            return 0, ""
        parts = []
        for (op, target), g in e.groupby(["op", "target"], sort=False):
            parts.append(f"{op} {target}" + (f" ({len(g)} rows)" if len(g) > 1 else ""))
        text = ", ".join(parts[:4]) + (f", ... ({len(parts) - 4} more)" if len(parts) > 4 else "")
        return int(e["created"].nunique()), text

    def get(self, name: str) -> "Scenario":
        """The scenario ``name`` (any spelling of it that is the same in NFC); None or ``"base"`` is the base."""
        name = normalise_scenario_name(name)
        if name in (None, BASE):
            return Scenario(self, BASE)
        meta = self._meta()
        if name not in meta:
            names = sorted(meta)
            raise ScenarioError(f"no scenario {name!r}; scenarios here: {names} (or 'base')"
                                + did_you_mean(name, names + [BASE]))
        return Scenario(self, name)

    __getitem__ = get

    def __contains__(self, name: str) -> bool:
        name = normalise_scenario_name(name)
        return name == BASE or name in self._meta()

    def __iter__(self):
        """The scenario names (without the base), as :meth:`names`."""
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._meta())

    def __repr__(self) -> str:
        try:
            return f"<Scenarios {self.names()} on {self.store.uri}>"
        except Exception:  # noqa: BLE001 - a closed store: a notebook still shows something
            return f"<Scenarios on {getattr(self.store, 'uri', '?')} (store closed)>"

    #: at most this many scenarios in the notebook table (then "... N more")
    HTML_ROWS = 50

    def _repr_html_(self) -> str:
        """What a notebook shows of ``twin.scenarios``: a table of the scenarios (name, parent, description,
        edits, their rows, created, last edited), or the one-line repr on a closed store."""
        import html

        esc = html.escape
        try:
            df = self.list()
            uri = str(self.store.uri)
        except Exception:  # noqa: BLE001 - a closed store: a notebook still shows something
            return f"<div>{esc(repr(self))}</div>"
        head = (f"<div><b>Scenarios</b> ({len(df)}) on <code>{esc(uri)}</code>, over the base city "
                "<code>'base'</code>")
        if not len(df):
            return head + "<br>(none yet: <code>twin.scenarios.create(name, description)</code>)</div>"
        cols = ["name", "parent", "description", "edits", "rows", "created", "last_edited"]
        th = "".join(f"<th style='text-align:left'>{esc(c.replace('_', ' '))}</th>" for c in cols)
        rows = []
        for r in df.head(self.HTML_ROWS).itertuples(index=False):
            cells = [r.name, r.parent, _short(r.description, 80), str(r.edits), str(r.rows), _when(r.created),
                     _when(r.last_edited)]
            rows.append("<tr>" + "".join(f"<td style='text-align:left'>{esc(str(c))}</td>" for c in cells) + "</tr>")
        more = (f"<tr><td colspan='{len(cols)}'>... {len(df) - self.HTML_ROWS} more: "
                "twin.scenarios.list()</td></tr>" if len(df) > self.HTML_ROWS else "")
        return (head + f"<table><tr>{th}</tr>{''.join(rows)}{more}</table>"
                "<small>edits: the changes made, each taken back by one undo; rows: the rows they wrote to the "
                "edit log (one close_roads closes many links); "
                "twin.scenarios.list(), twin.scenarios[name], twin.scenarios.diff('base', name)</small></div>")

    def delete(self, name: str) -> int:
        """Delete a scenario: its edits, the raster cells they stored, and its stored results.

        The results go with it (:func:`cim.results.delete_results`): they were made on this definition of the
        scenario, and a scenario created later under the same name listed them as its own runs. Save what you
        want to keep first (``twin.load_result`` and ``to_file`` / ``np.save``, or ``twin export``). A
        scenario that is the parent of others is not deleted (delete those first); ``"base"`` never is.
        Everything goes in one transaction. Returns how many results were deleted.

        Examples
        --------
        >>> import tempfile, os
        >>> from cim.results import list_results, save_result
        >>> from cim.store import open_store
        >>> store = open_store(os.path.join(tempfile.mkdtemp(), "d.gpkg"), create=True, crs="EPSG:4544")
        >>> sc = Scenarios(store)
        >>> _ = sc.create("levee")
        >>> save_result(store, "levee", "run1", "summary", {"max_depth_m": 1.2})
        >>> sc.delete("levee")
        1
        >>> "levee" in sc, len(list_results(store, scenario="levee"))
        (False, 0)
        >>> store.close()
        """
        from cim.results import delete_results  # cim.results imports this module

        name = normalise_scenario_name(name)
        if isinstance(name, str) and name.casefold() == BASE:
            raise ScenarioError(f"{name!r} is the city itself, not a scenario, and cannot be deleted; "
                                f"name a scenario: {self.names()}")
        name = self.get(name).name
        # checked and deleted together under the edit log's write lock: no child or edit slips in between
        with self.store.transaction(), self.store.lock_table(EDITS_TABLE):
            children = [n for n, m in self._meta().items() if m.get("parent") == name]
            if children:
                raise ScenarioError(f"scenario {name!r} is the parent of {children}; delete those first")
            edits = self._edits(name)
            for key in edits.loc[edits["blob_key"].notna(), "blob_key"]:
                self.store.delete_blob(key)
            if len(edits):
                self.store.delete_rows(EDITS_TABLE, {"scenario": name})
            n_results = delete_results(self.store, name)
            self.store.delete_meta([f"scenario:{name}"])
        return n_results

    # -- edit log ---------------------------------------------------------------
    _COLUMNS = ["scenario", "seq", "op", "target", "feature_id", "attrs", "geom_wkb", "blob_key", "window", "created"]

    def _edits(self, scenario: str | None = None) -> pd.DataFrame:
        if not self.store.has_table(EDITS_TABLE):
            return pd.DataFrame(columns=self._COLUMNS)
        return self.store.read_table(EDITS_TABLE, where={"scenario": scenario} if scenario else None, order_by="seq")

    def _append(self, rows: list[dict]) -> None:
        if not rows:
            return
        # one transaction holding the edit log's write lock (other processes' edits wait): the scenario still
        # exists, and the next sequence numbers are read and written together. Before, the lock was taken only
        # by the write: two processes read one highest seq and both wrote the next (duplicate seq, an undo that
        # took back the other's edit), and two first edits of a twin each created the table, the second
        # replacing the first's (one edit lost). transaction() first: the map server's LockedStore holds its
        # thread lock for a transaction block, not for a lock_table() call alone
        with self.store.transaction(), self.store.lock_table(EDITS_TABLE):
            meta = self._meta()
            gone = sorted({r["scenario"] for r in rows} - set(meta))
            if gone:
                raise ScenarioError(f"scenario(s) {gone} no longer exist (deleted meanwhile?); nothing was recorded")
            exists = self.store.has_table(EDITS_TABLE)
            if exists:
                checked = self._unique_seq()
            last = (self.store.read_table(EDITS_TABLE, columns=["seq", "created"], order_by="seq", descending=True,
                                          limit=1) if exists else pd.DataFrame(columns=["seq", "created"]))
            seq0 = int(last["seq"].iloc[0]) + 1 if len(last) else 1
            # one time for the rows of one edit, later than the edit before (undo() and n_edits tell edits apart
            # by it): two edits in one microsecond, or on a client whose clock is behind, get the one after
            now = datetime.now(timezone.utc)
            if len(last):
                before = pd.Timestamp(last["created"].iloc[0])
                before = before.tz_localize("UTC") if before.tzinfo is None else before.tz_convert("UTC")
                now = max(now, (before + pd.Timedelta(microseconds=1)).to_pydatetime())
            now = now.isoformat(timespec="microseconds")
            for i, r in enumerate(rows):
                r["seq"] = seq0 + i
                r.setdefault("created", now)
            df = pd.DataFrame(rows, columns=self._COLUMNS)
            df["seq"] = df["seq"].astype("int64")
            for c in ("feature_id", "attrs", "geom_wkb", "blob_key", "window"):
                df[c] = df[c].astype(object).where(df[c].notna(), None)
            # append creates the table when it is missing, under the lock: never a replace of one just made
            self.store.write_table(EDITS_TABLE, df, mode="append")
            if not exists:
                checked = self._unique_seq()
        self._unique_seq_done(checked)

    def _edit_log_id(self) -> Any:
        """An identity of the edit log table that a table dropped and made again does not keep, found in one
        short query: on PostGIS its OID. None where the store offers none (a GeoPackage, whose index lookup is a
        read of the local file): the index is then looked up at every edit."""
        if getattr(self.store, "kind", None) != "postgis":
            return None
        with self.store.conn.cursor() as cur:
            cur.execute("SELECT to_regclass(quote_ident(%s) || '.' || quote_ident(%s))::oid",
                        (self.store.schema, EDITS_TABLE))
            return cur.fetchone()[0]

    def _unique_seq_done(self, checked: Any) -> None:
        """Remember that the edit log ``checked`` (:meth:`_unique_seq`'s answer) has its unique index, once
        that is committed: not while an outer transaction is open, whose rollback may take back an index made
        in it."""
        if checked is not None and not self.store.in_transaction:
            self._seq_unique_id = checked

    def _unique_seq(self) -> Any:
        """Make ``seq`` of the edit log unique (a unique index), inside :meth:`_append`'s or undo's lock. An edit
        log written before (two processes editing at once could give one seq twice) is renumbered first, in its
        order (seq, then the order the rows were written), with a warning: the order of edits is kept, undo
        then takes back one edit at a time again.

        Returns the table's identity (:meth:`_edit_log_id`, None where the store has none), for the caller to
        remember once its transaction committed (:meth:`_unique_seq_done`). While the edit log is the table
        remembered, the index is not looked up again (a catalogue read, 0.5 ms of each edit on PostGIS); a table
        dropped and made again (a first edit after it was deleted, a renumbering here, a copy or a restore) is
        another table and is checked. An index dropped by hand from the same table is not seen until the
        process starts again (or another Scenarios is made on the store)."""
        from cim.store.base import index_name
        from twin_core.errors import SchemaError, TwinWarning, twin_warn

        ident = self._edit_log_id()
        if ident is not None and ident == self._seq_unique_id:
            return ident
        # there already (the usual case): one catalogue read, not create_index's checks under the table's lock;
        # a twin_ux_ name is only made by create_index(unique=True) (no table may start with twin_)
        if self.store.list_indexes(EDITS_TABLE).get(index_name(EDITS_TABLE, ["seq"], unique=True)) == ["seq"]:
            return ident
        try:
            self.store.create_index(EDITS_TABLE, ["seq"], unique=True)
        except SchemaError:
            log = self.store.read_table(EDITS_TABLE, order_by="seq")  # ties in the order they were written
            repeats = int(log["seq"].duplicated().sum())
            if not repeats:
                raise
            log["seq"] = np.arange(1, len(log) + 1, dtype="int64")
            self.store.write_table(EDITS_TABLE, log, mode="replace")
            self.store.create_index(EDITS_TABLE, ["seq"], unique=True)
            ident = self._edit_log_id()  # the replace made another table
            twin_warn(f"the scenario edit log ({EDITS_TABLE}) of {self.store.uri} held {_plural(repeats, 'edit row')} "
                      "whose sequence number another row had too (two processes edited at once before this "
                      f"version); its {len(log)} rows were renumbered 1..{len(log)} in their order and seq is "
                      "unique now. Check the scenarios' latest edits (Python: twin.scenarios.get(name).edits()) "
                      "before an undo: an edit written in the same instant as another may count as one with it",
                      TwinWarning)
        return ident

    def _modified(self, names, meta: dict | None = None) -> pd.Timestamp | None:
        """The latest time an edit of these scenarios was taken back (:meth:`Scenario.undo`), None if never."""
        meta = self._meta() if meta is None else meta
        times = [meta.get(n, {}).get("modified") for n in names]
        times = [t for t in times if t]
        return max(pd.to_datetime(times, utc=True, format="ISO8601")) if times else None

    def diff(self, a: str, b: str) -> pd.DataFrame:
        """What differs between two scenarios (either may be ``"base"``).

        One row per changed feature (layer, feature_id, change, fields) and one
        per changed raster (cells changed, their bounds).
        """
        sa, sb = self.get(a), self.get(b)
        targets = sorted(set(sa.touched()) | set(sb.touched()))
        rows: list[dict] = []
        for kind, target in targets:
            if kind == "layer":
                la, lb = sa.layer(target), sb.layer(target)
                idf = id_field_of(target, la)
                ia = la.set_index(la[idf].astype(str))
                ib = lb.set_index(lb[idf].astype(str))
                for fid in sorted(set(ib.index) - set(ia.index)):
                    rows.append({"target": target, "feature_id": fid, "change": "added", "fields": ""})
                for fid in sorted(set(ia.index) - set(ib.index)):
                    rows.append({"target": target, "feature_id": fid, "change": "removed", "fields": ""})
                for fid in sorted(set(ia.index) & set(ib.index)):
                    ra, rb = ia.loc[fid], ib.loc[fid]
                    changed = [c for c in ia.columns if c != ia.geometry.name and not _same(ra[c], rb[c])]
                    if not ra.geometry.equals_exact(rb.geometry, 1e-9):
                        changed.append("geometry")
                    if changed:
                        rows.append({"target": target, "feature_id": fid, "change": "modified", "fields": ",".join(changed)})
            elif kind == "raster":
                ra, rb = sa.raster(target), sb.raster(target)
                d = ~np.isclose(ra.data, rb.data, equal_nan=True)
                if d.any():
                    rr, cc = np.nonzero(d)
                    w = Window(int(rr.min()), int(cc.min()), int(rr.max() - rr.min() + 1), int(cc.max() - cc.min() + 1))
                    rows.append({"target": target, "feature_id": None, "change": "raster",
                                 "fields": json.dumps({"cells": int(d.sum()), "bounds": ra.window(w).bounds,
                                                       "mean_change": float(np.nanmean(rb.data[d].astype('f8') - ra.data[d]))})})
            else:
                va, vb = sa.params().get(target), sb.params().get(target)
                if va != vb:
                    rows.append({"target": target, "feature_id": None, "change": "param",
                                 "fields": json.dumps({"a": va, "b": vb}, default=str)})
        return pd.DataFrame(rows, columns=["target", "feature_id", "change", "fields"])


def _same(a: Any, b: Any) -> bool:
    if (a is None or (isinstance(a, float) and np.isnan(a)) or a is pd.NA) and \
            (b is None or (isinstance(b, float) and np.isnan(b)) or b is pd.NA):
        return True
    try:
        return bool(a == b)
    except (TypeError, ValueError):
        return False


@dataclass
class Scenario:
    """One scenario: record edits, read layers and rasters as of it."""

    scenarios: Scenarios
    name: str

    @property
    def store(self):
        return self.scenarios.store

    @property
    def is_base(self) -> bool:
        return self.name == BASE

    def _info(self, meta: dict | None = None) -> dict | None:
        """What the reprs show: meta (description, parent, created), the edits of its own (calls, rows, a
        short text); None when the scenario was deleted. ``meta``: :meth:`Scenarios._meta` when the caller read
        it already."""
        if self.is_base:
            return {"description": "the city itself", "parent": None, "created": None, "edits": 0, "rows": 0,
                    "summary": ""}
        meta = (self.scenarios._meta() if meta is None else meta).get(self.name)
        if meta is None:
            return None
        n, summary = self.scenarios._edit_summary(self.name)
        return {"description": meta.get("description", ""), "parent": meta.get("parent", BASE),
                "created": meta.get("created"), "modified": meta.get("modified"), "edits": n, "summary": summary}

    def __repr__(self) -> str:
        """One line: the name, its parent, how many edits of its own, the description.

        >>> import tempfile, os
        >>> from cim.store import open_store
        >>> store = open_store(os.path.join(tempfile.mkdtemp(), "r.gpkg"), create=True, crs="EPSG:4544")
        >>> s = Scenarios(store).create("levee", "a 2 m levee")
        >>> s.set_param("height_m", 2)
        >>> s  # doctest: +ELLIPSIS
        <Scenario 'levee' parent='base' 1 edit 'a 2 m levee' on ...r.gpkg>
        >>> store.close()
        >>> s  # doctest: +ELLIPSIS
        <Scenario 'levee' on ...r.gpkg (store closed)>
        """
        uri = getattr(self.store, "uri", "?")
        try:
            info = self._info()
        except Exception:  # noqa: BLE001 - a closed store: a notebook still shows something
            return f"<Scenario {self.name!r} on {uri} (store closed)>"
        if self.is_base:
            return f"<Scenario 'base' (the city itself) on {uri}>"
        if info is None:
            return f"<Scenario {self.name!r} (deleted) on {uri}>"
        desc = f" {_short(info['description'], 60)!r}" if info["description"] else ""
        return f"<Scenario {self.name!r} parent={info['parent']!r} {_plural(info['edits'], 'edit')}{desc} on {uri}>"

    def _repr_html_(self) -> str:
        """What a notebook shows of a scenario: a table of its name, parent, description, edits and when it was
        created and last edited; the one-line repr on a closed store or for a deleted scenario."""
        import html

        esc = html.escape
        try:
            meta = None if self.is_base else self.scenarios._meta()  # read once for both
            info = self._info(meta)
            last = self._last_edited(meta) if info is not None and not self.is_base else None
            uri = str(self.store.uri)
        except Exception:  # noqa: BLE001 - a closed store: a notebook still shows something
            return f"<div>{esc(repr(self))}</div>"
        if info is None or self.is_base:
            return f"<div>{esc(repr(self))}</div>"

        def row(k, v):
            return f"<tr><th style='text-align:left'>{esc(k)}</th><td style='text-align:left'>{esc(str(v))}</td></tr>"

        edits = _plural(info["edits"], "edit") + (f": {info['summary']}" if info["summary"] else "")
        rows = [row("name", self.name), row("parent", info["parent"]),
                row("description", _short(info["description"], 300) or "(none)"), row("edits", edits),
                row("created", _when(info["created"])),
                row("last edited", _when(last.isoformat()) if last is not None else "(never)"),
                row("store", uri)]
        return (f"<div><b>Scenario</b> <code>{esc(self.name)}</code><table>{''.join(rows)}</table>"
                "<small>s.layer(name), s.raster(name), s.edits(), s.undo(); "
                f"twin.scenarios.diff('base', {esc(repr(self.name))})</small></div>")

    def _chain(self, meta: dict | None = None) -> list[str]:
        """This scenario and its ancestors, oldest first (without 'base'). ``meta``: :meth:`Scenarios._meta` when
        the caller read it already."""
        chain, name = [], self.name
        meta = self.scenarios._meta() if meta is None else meta
        while name != BASE:
            chain.append(name)
            name = meta.get(name, {}).get("parent", BASE)
            if name in chain:
                raise ScenarioError(f"scenario parents form a cycle at {name!r}")
        return chain[::-1]

    @property
    def n_edits(self) -> int:
        """How many edits of its own the scenario has, as :meth:`undo` takes them back (one a call: all the rows
        one :meth:`close_roads` wrote are one edit); the ``edits`` of :meth:`Scenarios.list` and the repr.
        ``len(s.edits())`` counts rows."""
        return 0 if self.is_base else self.scenarios._edit_summary(self.name)[0]

    def edits(self) -> pd.DataFrame:
        """This scenario's own edits, in order: one row a feature (an edit that changes three features writes
        three rows with one ``created`` time); :attr:`n_edits` counts the edits."""
        if self.is_base:
            return pd.DataFrame(columns=Scenarios._COLUMNS)
        return self.scenarios._edits(self.name)

    def last_edited(self) -> pd.Timestamp | None:
        """When this scenario or one of its parents was last edited (UTC), None if never (and for the base):
        a run made before that is not the scenario's answer any more."""
        return None if self.is_base else self._last_edited(self.scenarios._meta())

    def _last_edited(self, meta: dict) -> pd.Timestamp | None:
        """:meth:`last_edited` with the scenarios' metadata read already (:meth:`Scenarios._meta`): one read of
        it for the chain, the edits and the undo times (there were three)."""
        chain = self._chain(meta)
        e = self._all_edits(chain)
        times = [self.scenarios._modified(chain, meta)]  # an undo changes the scenario as much as an edit
        if len(e):
            times.append(pd.to_datetime(e["created"], utc=True, format="ISO8601").max())
        times = [t for t in times if t is not None]
        return max(times) if times else None

    def _all_edits(self, chain: list[str] | None = None) -> pd.DataFrame:
        """The edits of this scenario and its ancestors, in order (``chain``: :meth:`_chain`, when read already)."""
        chain = self._chain() if chain is None else chain
        if not chain:
            return pd.DataFrame(columns=Scenarios._COLUMNS)
        df = self.scenarios._edits()
        if not len(df):
            return df
        df = df[df["scenario"].isin(chain)]
        order = {n: i for i, n in enumerate(chain)}
        return df.assign(_o=df["scenario"].map(order)).sort_values(["_o", "seq"]).drop(columns="_o")

    def touched(self) -> list[tuple[str, str]]:
        e = self._all_edits()
        out = []
        for op, target in zip(e["op"], e["target"]):
            kind = "raster" if op == "patch_raster" else "param" if op == "set_param" else "layer"
            if (kind, target) not in out:
                out.append((kind, target))
        return out

    def _require_editable(self) -> None:
        if self.is_base:
            raise ScenarioError("the base is never edited through a scenario; create a scenario and edit that: "
                                "twin scenario create STORE NAME (Python: twin.scenarios.create(name))")

    # -- edits ----------------------------------------------------------------------
    def add_features(self, layer: str, gdf) -> None:
        """Add new features (they must carry the layer's id field)."""
        import shapely

        self._require_editable()
        self.store._require_layer(layer)
        self.store._check_crs(gdf, layer)
        idf = id_field_of(layer, gdf)
        if idf not in gdf.columns:
            raise ScenarioError(f"new features for {layer!r} need their id field {idf!r}")
        info = self.store.layer_info(layer)
        gdf = _typed(layer, gdf, idf, info["columns"], gdf.geometry.name)
        _check_geometries(layer, gdf, idf, info.get("geometry_type"), required=True)
        _check_in_area(layer, gdf, idf, self.store.crs)
        existing = set(self.layer(layer)[idf].astype(str))
        dup = sorted(set(gdf[idf].astype(str)) & existing)
        if dup:
            raise ScenarioError(f"features {dup[:5]} exist in {layer!r} already; use modify_features to change them")
        wkb = shapely.to_wkb(gdf.geometry.values, hex=True)
        rows = [
            {"scenario": self.name, "op": "add", "target": layer, "feature_id": str(r[idf]),
             "attrs": _attrs_json(r, gdf.geometry.name), "geom_wkb": w}
            for (_, r), w in zip(gdf.iterrows(), wkb)
        ]
        self.scenarios._append(rows)

    def remove_features(self, layer: str, ids: Iterable) -> None:
        """Remove features by id."""
        self._require_editable()
        cur = self.layer(layer)
        idf = id_field_of(layer, cur)
        ids = [str(i) for i in ids]
        missing = sorted(set(ids) - set(cur[idf].astype(str)))
        if missing:
            raise ScenarioError(f"cannot remove {missing[:5]}: not in {layer!r} as of scenario {self.name!r}")
        self.scenarios._append([{"scenario": self.name, "op": "remove", "target": layer, "feature_id": i} for i in ids])

    def modify_features(self, layer: str, changes) -> None:
        """Change attributes (and geometry, if the frame has one) of existing features.

        ``changes`` is a (Geo)DataFrame with the id field and the columns to change.
        """
        import geopandas as gpd
        import shapely

        self._require_editable()
        cur = self.layer(layer)
        idf = id_field_of(layer, cur)
        if idf not in changes.columns:
            raise ScenarioError(f"changes for {layer!r} need the id field {idf!r}")
        missing = sorted(set(changes[idf].astype(str)) - set(cur[idf].astype(str)))
        if missing:
            raise ScenarioError(f"cannot modify {missing[:5]}: not in {layer!r} as of scenario {self.name!r}")
        unknown = [c for c in changes.columns if c not in cur.columns and not (
            isinstance(changes, gpd.GeoDataFrame) and c == changes.geometry.name)]
        if unknown:
            raise ScenarioError(f"layer {layer!r} has no field(s) {unknown}; fields: {list(cur.columns)}")
        has_geom = isinstance(changes, gpd.GeoDataFrame)
        info = self.store.layer_info(layer)
        changes = _typed(layer, changes, idf, info["columns"], changes.geometry.name if has_geom else None)
        if has_geom:
            self.store._check_crs(changes, layer)
            _check_geometries(layer, changes, idf, info.get("geometry_type"), required=False)
            _check_in_area(layer, changes, idf, self.store.crs)
        wkb = shapely.to_wkb(changes.geometry.values, hex=True) if has_geom else [None] * len(changes)
        rows = [
            {"scenario": self.name, "op": "modify", "target": layer, "feature_id": str(r[idf]),
             "attrs": _attrs_json(r.drop(labels=[idf]), changes.geometry.name if has_geom else None), "geom_wkb": w}
            for (_, r), w in zip(changes.iterrows(), wkb)
        ]
        self.scenarios._append(rows)

    def close_roads(self, polygon, layer: str = "road_links") -> list[str]:
        """Close every road link the polygon crosses (capacity 0). Returns their ids.

        The polygon is checked as a raise-ground edit's is: a self-crossing ("bow-tie") or empty polygon, or
        another geometry, is a :class:`~twin_core.errors.ScenarioError` saying where its edges cross, and
        nothing is recorded.
        """
        import shapely

        _check_edit_polygon(polygon, layer, kind="road closure")
        links = self.layer(layer)
        hit = links[shapely.intersects(links.geometry.values, polygon)]
        if not len(hit):
            bounds = getattr(polygon, "bounds", None)
            raise ScenarioError(f"the closure polygon crosses no link of {layer!r}; check its CRS and position"
                                + _lonlat_hint(bounds, self.store.crs, polygon=True))
        idf = id_field_of(layer, links)
        ch = pd.DataFrame({idf: hit[idf].values, "capacity_vph": 0.0})
        self.modify_features(layer, ch)
        return hit[idf].astype(str).tolist()

    def patch_raster(self, name: str, where: "Window | tuple | Any", values=None, *, delta: float | None = None) -> Window:
        """Change a raster region: a levee, a storage pond, a regraded plot.

        ``where`` is a :class:`Window`, bounds ``(xmin, ymin, xmax, ymax)`` or a
        shapely polygon. Give ``values`` (a scalar or an array of the window's
        shape) or ``delta`` (added to the current cells). With a polygon only
        the cells whose centre lies inside change; where it is narrower than 1.5 cells (a thin levee), every
        cell it touches, with a warning (a strip by centres alone leaves gaps water crosses). An edit that
        would make a ``manning`` cell <= 0 is refused.

        The edit is kept as what it is, not as the cells it makes today: a delta stays a delta on a base
        updated later (a 2 m levee stays 2 m above the new ground), values stay those values, and a base put
        on another grid is refused on read (see :meth:`raster`).
        """
        self._require_editable()
        base = self.raster(name)
        poly = None
        if isinstance(where, Window):
            win = where
            base.window(win)  # validates
        elif isinstance(where, (tuple, list, np.ndarray)) and len(where) == 4 or hasattr(where, "geom_type"):
            poly = where if hasattr(where, "geom_type") else None
            if poly is not None:
                _check_edit_polygon(poly, name)
            bounds = tuple(poly.bounds if poly is not None else where)
            try:
                win = base.window_from_bounds(bounds)
            except RasterError:  # far off the grid: lon/lat for metres, another CRS's metres, another place
                raise RasterError(_off_the_raster(bounds, base, name, polygon=poly is not None)) from None
            if poly is None:  # a box: (a polygon's own bounds may stick out where the polygon does not)
                _warn_partly_outside(bounds, base, name)
        else:
            raise ScenarioError("where must be a Window, (xmin, ymin, xmax, ymax) bounds or a shapely polygon")
        current = base.window(win).data.astype("float64")
        if (values is None) == (delta is None):
            raise ScenarioError("give exactly one of values= or delta=")
        unit = f" ({base.unit})" if getattr(base, "unit", None) else ""
        if delta is not None:
            try:
                ok = not isinstance(delta, (bool, str)) and np.isfinite(float(delta))
            except (TypeError, ValueError):
                ok = False
            if not ok:  # '2m' failed as a bare "could not convert string to float" ValueError
                raise ScenarioError(f"delta must be a finite number in the raster's unit{unit}, got {delta!r}; "
                                    "e.g. delta=2.0")
        if values is not None:
            try:
                arr = np.asarray(values, dtype="float64")
            except (TypeError, ValueError):
                arr = None
            if arr is None or not np.isfinite(arr).all():
                raise ScenarioError(f"values must be finite numbers in the raster's unit{unit} (a scalar or an array "
                                    "of the window's shape; the raster's nodata cells are kept as they are), got "
                                    f"{values!r}"[:300])
        new = current + float(delta) if delta is not None else np.broadcast_to(np.asarray(values, dtype="float64"), current.shape).copy()
        if new.shape != current.shape:
            raise ScenarioError(f"values have shape {new.shape}, the window needs {current.shape}")
        # nodata stays nodata: a levee drawn across the edge of the DEM does not invent ground there
        void = ~np.isfinite(current)
        if base.nodata is not None and np.isfinite(base.nodata):
            void |= current == float(base.nodata)
        new = np.where(void, current, new)
        if poly is not None:
            sub = base.window(win)
            inside = _polygon_cells(poly, sub, name)
            if not inside.any():
                raise ScenarioError("the polygon covers no cell centre of the raster; use a larger polygon or bounds")
            new = np.where(inside, new, current)
        if name == "manning" or str(getattr(base, "unit", "") or "").replace(" ", "") in ("s/m^(1/3)", "s/m1/3",
                                                                                         "s·m^(-1/3)", "sm-1/3"):
            changed = (~void if poly is None else ~void & inside) & np.isfinite(new)
            bad = changed & (new <= 0)
            if bad.any():  # a Manning's n <= 0 is no roughness: the flood engine put 0.03 in its place unasked
                rr, cc = np.nonzero(bad)
                xs, ys = base.xy(rr[:3] + win.row_off, cc[:3] + win.col_off)
                cells = ", ".join(f"({x:.1f}, {y:.1f}): {current[r, c]:g} -> {new[r, c]:g}"
                                  for x, y, r, c in zip(xs, ys, rr[:3], cc[:3]))
                raise ScenarioError(f"the edit would make Manning's n <= 0 in {int(bad.sum())} cell(s) of "
                                    f"{name!r} (e.g. {cells}); n is a roughness > 0 (s/m^(1/3), 0.012-0.15 from "
                                    "smooth asphalt to dense vegetation): give a smaller change, or values= of the "
                                    "new n")
        big = np.isfinite(new) & (np.abs(new) > np.finfo("float32").max)
        if big.any():  # float32 would make them +-inf: a DEM with infinite ground
            raise ScenarioError(
                f"the edit would give {int(big.sum())} cell(s) of {name!r} values beyond the float32 range "
                f"(+-3.4e38) rasters are stored in, e.g. {float(new[big][0]):.6g}{unit}; give a delta or values "
                "of a real height"
            )
        # what is kept is the edit, not the cells it made on today's base (those were pasted over a base updated
        # later: a 2 m levee on a DEM raised by 10 m read as an 8 m trench): a delta edit keeps the cells it
        # raises (a mask; the delta is in attrs), a values edit its values (NaN where it changes nothing)
        applied = ~void if poly is None else ~void & inside
        kept = applied if delta is not None else np.where(applied, new, np.nan).astype("float32")
        buf = io.BytesIO()
        np.save(buf, kept, allow_pickle=False)
        key = f"scenario/{self.name}/{name}/{_now()}.npy"
        # what was asked, beside the cells it made: a levee's height reads back from the store (the map shows it);
        # its kind and the grid it was drawn on let a read re-apply it on the base of the day (see raster())
        attrs = {"delta": float(delta)} if delta is not None else {"values": "given"}
        attrs.update({"kind": "delta" if delta is not None else "values", "grid": _grid_of(base)})
        with self.store.transaction():
            self.store.put_blob(key, buf.getvalue(), mime="application/x-npy")
            self.scenarios._append([{
                "scenario": self.name, "op": "patch_raster", "target": name, "blob_key": key,
                "window": json.dumps([win.row_off, win.col_off, win.height, win.width]),
                "attrs": json.dumps(attrs),
            }])
        return win

    def set_param(self, key: str, value: Any) -> None:
        """Record a scenario parameter (storm return period, demand scale ...).

        Where the scenarios have a ``param_check`` (:class:`~twin_core.twin.Twin` sets the engines' check: a
        value they would not take, link ids the roads do not have), a value it refuses is not recorded, as
        ``twin scenario set-param`` and the map refuse it."""
        self._require_editable()
        try:
            text = json.dumps(value, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise ScenarioError(f"parameter {key!r}: {value!r} is not a JSON value without NaN or infinity "
                                f"({exc}); give a number, string, list or mapping") from None
        if self.scenarios.param_check is not None:
            self.scenarios.param_check(key, value, self)
        self.scenarios._append([{"scenario": self.name, "op": "set_param", "target": key, "attrs": text}])

    def undo(self, *, missing_ok: bool = False) -> pd.DataFrame:
        """Take back this scenario's latest edit: the rows one call recorded together (all the roads one
        :meth:`close_roads` closed, one :meth:`patch_raster`, ...), with the raster cells it stored.

        Returns the rows taken back. A scenario with no edits of its own is a :class:`ScenarioError` (as
        ``twin scenario undo`` says it), most likely an undo too many or the wrong scenario; ``missing_ok=True``
        returns an empty table instead. The parent's edits are not touched: undo them on the parent. Runs made
        since the edit are marked stale by :meth:`last_edited`, which counts the undo as a change.
        """
        self._require_editable()
        sc = self.scenarios
        # the last edit is read and deleted together under the edit log's write lock: a concurrent edit waits
        with self.store.transaction(), self.store.lock_table(EDITS_TABLE):
            meta = sc._meta()
            if self.name not in meta:
                raise ScenarioError(f"scenario {self.name!r} no longer exists (deleted meanwhile?)")
            checked = sc._unique_seq() if self.store.has_table(EDITS_TABLE) else None
            e = self.edits()
            if len(e):
                # the edit with the highest seq, all its rows (written together: one created time, the last
                # rows by seq); before, every row of the latest created time went, another process's edit of
                # the same instant (and a duplicate seq) with it
                created = e["created"].astype(str).to_numpy()
                n = len(e) - 1
                while n > 0 and created[n - 1] == created[-1]:
                    n -= 1
                first_seq = int(e["seq"].iloc[n])
                gone = e.iloc[n:]
                for key in gone.loc[gone["blob_key"].notna(), "blob_key"]:
                    self.store.delete_blob(key)
                self.store.delete_rows(EDITS_TABLE, {"scenario": self.name, "seq": (">=", first_seq)})
                changed = dict(meta[self.name])
                changed["modified"] = _now()
                self.store.set_meta({f"scenario:{self.name}": changed})
        sc._unique_seq_done(checked)
        if not len(e):  # said outside the transaction: nothing was written
            if missing_ok:
                return e
            parent = meta[self.name].get("parent", BASE)
            raise ScenarioError(f"scenario {self.name!r} has no edits of its own to undo"
                                + (f"; the edits it shows from its parent {parent!r} are undone on {parent!r}"
                                   if parent != BASE else ""))
        return gone.reset_index(drop=True)

    # -- reads ------------------------------------------------------------------------
    def params(self) -> dict[str, Any]:
        e = self._all_edits()
        return {t: json.loads(a) for op, t, a in zip(e["op"], e["target"], e["attrs"]) if op == "set_param"}

    def layer(self, name: str, **read_kwargs):
        """The layer as of this scenario (base plus edits). ``bbox``/``where`` filter the result."""
        import geopandas as gpd
        import shapely

        log = self._all_edits()
        edits = log[(log["target"] == name) & log["op"].isin(["add", "remove", "modify"])] if len(log) else log
        if not len(edits):
            return self.store.read_layer(name, **read_kwargs)
        # edits first, then the filters, then paging, then the columns: the base read is of the whole layer,
        # since an edit may move a feature into the box, change the field filtered on, or add a feature
        bbox = read_kwargs.pop("bbox", None)
        where = read_kwargs.pop("where", None)
        columns = read_kwargs.pop("columns", None)
        limit = read_kwargs.pop("limit", None)
        offset = read_kwargs.pop("offset", None)
        gdf = self.store.read_layer(name, **read_kwargs)
        idf = id_field_of(name, gdf)
        orphan = _orphan_mask(edits, set(gdf[idf].astype(str)))
        if orphan.any():  # an edit of features the base no longer holds is no silent no-op
            _warn_orphans(self.name, name, edits, orphan, store=self.store, log=log)
        gdf = _apply_feature_edits(gdf, edits, idf)
        geom_col = gdf.geometry.name
        gdf = gpd.GeoDataFrame(gdf, geometry=geom_col, crs=self.store.crs)
        if columns is not None:
            unknown = [c for c in columns if c not in gdf.columns or c == geom_col]
            if unknown:
                from twin_core.errors import SchemaError

                raise SchemaError(f"layer {name!r} has no column(s) {unknown}; it has "
                                  f"{[c for c in gdf.columns if c != geom_col]}")
        if bbox is not None:
            from cim.store.base import check_bbox

            gdf = gdf[shapely.intersects(gdf.geometry.envelope.values, shapely.box(*check_bbox(bbox)))]
        if where:
            from cim.store.base import normalise_where

            for col, op, val in normalise_where(where, list(gdf.columns), name):
                s = gdf[col]
                mask = s.isin(val) if op == "in" else (s.isna() if val is None else {
                    "=": s == val, "!=": s != val, "<": s < val, "<=": s <= val, ">": s > val, ">=": s >= val}[op])
                gdf = gdf[mask]
        if offset:
            gdf = gdf.iloc[int(offset):]
        if limit is not None:
            gdf = gdf.iloc[:int(limit)]
        if columns is not None:
            gdf = gdf[[c for c in gdf.columns if c in set(columns)] + [geom_col]]
        return gdf.reset_index(drop=True)

    def raster(self, name: str, *, window: Window | None = None, bounds=None) -> Raster:
        """The raster as of this scenario: the base of today with the raster edits of the scenario (and its
        parents) applied in order.

        An edit holds on whatever base is there when it is read, so a base updated later (a new survey
        imported under the same name) keeps its scenarios right: a ``delta`` edit (:meth:`patch_raster`
        with ``delta=``: raise or lower the ground) is added to today's cells, a ``values`` edit sets its
        cells to its values, and the base's nodata cells stay nodata. Edits recorded before edits kept their
        kind are absolute (their attrs have no ``"kind"``: :func:`raster_edit_kind` says ``"absolute"``):
        their cells are pasted as they were made, as they always were, with a
        :class:`~twin_core.errors.TwinWarning` where the raster was replaced since (an old delta edit: the ground
        under it is not what it was made on; any other old edit, ``values`` set: the raster was written after the
        edit was made, :meth:`~cim.store.base.Store.raster_written`, so the edit's cells, kept by row and column,
        may lie elsewhere on a raster moved or put on another grid). A base put on a grid the edit no
        longer maps onto (another cell size or CRS, an origin moved by part of a cell, or the edit's cells
        outside it; a move by whole cells is followed) is a :class:`~twin_core.errors.ScenarioError` naming
        the scenario, the raster and what to do.
        """
        edits = self._all_edits()
        patches = edits[(edits["op"] == "patch_raster") & (edits["target"] == name)] if len(edits) else edits
        if not len(patches):
            return self.store.read_raster(name, window=window, bounds=bounds)
        full = self.store.read_raster(name)
        data = full.data.astype("float32", copy=True)
        written = None
        if any(raster_edit_kind(a) == "absolute" for a in patches["attrs"]):  # an old edit: was it replaced since?
            written = self.store.raster_written(name)
        for e in patches.itertuples(index=False):
            kept = np.load(io.BytesIO(self.store.get_blob(e.blob_key)), allow_pickle=False)
            _apply_raster_edit(data, full, e, kept, name, written=written)
        out = Raster(data, full.transform, full.crs, full.nodata, full.unit, dict(full.meta))
        if window is not None or bounds is not None:
            out = out.window(window if window is not None else out.window_from_bounds(tuple(bounds)))
        return out


def _grid_of(r: Raster) -> dict:
    """The grid a raster edit is drawn on, as its attrs keep it: shape, transform, CRS and unit."""
    return {"shape": [int(n) for n in r.shape], "transform": [float(v) for v in tuple(r.transform)[:6]],
            "crs": None if r.crs is None else str(r.crs), "unit": r.unit}


def _edit_attrs(attrs) -> dict:
    try:
        d = json.loads(attrs) if isinstance(attrs, str) else {}
    except ValueError:
        d = {}
    return d if isinstance(d, dict) else {}


def raster_edit_kind(attrs) -> str:
    """How a ``patch_raster`` edit applies, from its attrs (the JSON text of its row, or the dict):
    ``"delta"`` (added to the base's cells), ``"values"`` (its cells set to its values) or ``"absolute"``
    (recorded before edits kept their kind: the cells it made then, pasted as they are).

    >>> raster_edit_kind('{"delta": 2.0, "kind": "delta"}'), raster_edit_kind('{"delta": 2.0}')
    ('delta', 'absolute')
    """
    kind = (attrs if isinstance(attrs, dict) else _edit_attrs(attrs)).get("kind")
    return kind if kind in ("delta", "values") else "absolute"


def _grid_text(shape, t, crs) -> str:
    return f"{shape[0]} x {shape[1]} cells of {t[0]:g} x {-t[4]:g} from ({t[2]:.10g}, {t[5]:.10g}) in {crs}"


def _moved_grid(e, name: str, attrs: dict, window, full: Raster, why: str) -> ScenarioError:
    """The error for an edit whose cells no longer map onto the raster: what, where, and what to do."""
    kind = raster_edit_kind(attrs)
    unit = f" {full.unit}" if full.unit else ""
    delta = attrs.get("delta")
    what = (f"{delta:+g}{unit}" if kind == "delta" and isinstance(delta, (int, float)) else
            "values set" if kind == "values" else "cells pasted as made")
    when = _when(e.created)
    r0, c0, h, w = window
    return ScenarioError(
        f"scenario {e.scenario!r} has an edit of raster {name!r} ({what} over {h} x {w} cells at row {r0}, column "
        f"{c0}{', made ' + when if when else ''}) that does not map onto {name!r} now: {why} ({name!r} was "
        f"replaced since). Draw the edit again on the new {name!r}: take it back first (twin scenario undo STORE "
        f"{e.scenario}, or twin.scenarios[{e.scenario!r}].undo(); undo takes back the latest edit first), or "
        "delete the scenario")


def _edit_window(e, name: str, attrs: dict, full: Raster) -> tuple[int, int, int, int]:
    """Where a raster edit's cells lie on ``full`` today: its recorded window, moved by whole cells when the
    base's origin moved (same cell size and CRS); a :class:`ScenarioError` when it does not map."""
    r0, c0, h, w = (int(v) for v in json.loads(e.window))
    rows, cols = full.shape
    grid = attrs.get("grid") if raster_edit_kind(attrs) != "absolute" else None
    if grid is None:  # recorded before edits kept their kind and grid: it maps where it fits
        if r0 + h <= rows and c0 + w <= cols:
            return r0, c0, h, w
        raise _moved_grid(e, name, attrs, (r0, c0, h, w), full,
                          f"its cells lie outside {name!r}, which is now {rows} x {cols} cells")
    t0, t1 = grid["transform"], tuple(full.transform)[:6]
    now = _grid_text(full.shape, t1, full.crs)
    then = _grid_text(grid["shape"], t0, grid.get("crs"))
    from cim.io.raster import same_unit

    if grid.get("unit") and full.unit and not same_unit(grid["unit"], full.unit):
        raise _moved_grid(e, name, attrs, (r0, c0, h, w), full,
                          f"it was drawn in {grid['unit']!r} and {name!r} is now in {full.unit!r}")
    crs_now = None if full.crs is None else str(full.crs)
    if [int(n) for n in grid["shape"]] == [rows, cols] and np.allclose(t0, t1, rtol=0, atol=1e-6) and \
            grid.get("crs") == crs_now:
        return r0, c0, h, w
    from cim.crs import same_crs

    same_cells = np.allclose([t0[i] for i in (0, 1, 3, 4)], [t1[i] for i in (0, 1, 3, 4)], rtol=1e-9, atol=1e-9)
    if same_cells and (grid.get("crs") == crs_now or same_crs(grid.get("crs"), full.crs)):
        dc, dr = (t0[2] - t1[2]) / t1[0], (t0[5] - t1[5]) / t1[4]
        if abs(dc - round(dc)) < 1e-6 and abs(dr - round(dr)) < 1e-6:  # the origin moved by whole cells
            r, c = r0 + int(round(dr)), c0 + int(round(dc))
            if r >= 0 and c >= 0 and r + h <= rows and c + w <= cols:
                return r, c, h, w
            raise _moved_grid(e, name, attrs, (r0, c0, h, w), full,
                              f"it was drawn on {then}, and its cells lie outside {name!r}, now {now}")
    raise _moved_grid(e, name, attrs, (r0, c0, h, w), full, f"it was drawn on {then}, and {name!r} is now {now}")


def _apply_raster_edit(data: np.ndarray, full: Raster, e, kept: np.ndarray, name: str, *,
                       written: pd.Timestamp | None = None) -> None:
    """Apply one ``patch_raster`` edit (a row of the edit log, ``kept`` its stored array) to ``data`` (the
    cells of ``full`` with the earlier edits applied), in place; see :meth:`Scenario.raster`. ``written``: when
    the raster was last written, where the store knows it (None: unknown)."""
    attrs = _edit_attrs(e.attrs)
    kind = raster_edit_kind(attrs)
    r0, c0, h, w = _edit_window(e, name, attrs, full)
    sub = data[r0:r0 + h, c0:c0 + w]  # a view: written in place
    if kind == "absolute":
        if _old_delta(attrs) is not None:
            _warn_if_old_delta_moved(e, name, attrs, sub, kept)
        else:
            _warn_if_old_edit_replaced(e, name, attrs, kept, written)
        sub[...] = kept
        return
    # nodata stays nodata: the base of today may have gaps the edit's base had not
    void = ~np.isfinite(sub)
    if full.nodata is not None and np.isfinite(full.nodata):
        void |= sub == np.float32(full.nodata)
    if kind == "delta":
        on = kept.astype(bool) & ~void
        sub[on] = (sub[on].astype("float64") + float(attrs["delta"])).astype("float32")
    else:
        on = np.isfinite(kept) & ~void
        sub[on] = kept[on]


def _warn_if_old_delta_moved(e, name: str, attrs: dict, under: np.ndarray, kept: np.ndarray) -> None:
    """Warn when an edit recorded the old way (the cells it made) as a ``delta`` no longer sits on the cells it was
    made on: each of its cells was the one under it, or that plus the delta, when it was made. Any other cell
    means ``name`` was replaced since (a new survey), and the pasted cells are the old ground's: a 2 m levee on a
    DEM raised by 10 m reads as an 8 m trench. Such an edit cannot be re-applied (what it raised is not kept),
    so it is pasted as before, with this warning."""
    delta = _old_delta(attrs)
    if delta is None:
        return
    d = kept.astype("float64") - under.astype("float64")
    ok = ~np.isfinite(d) | (np.abs(d) <= 1e-3) | (np.abs(d - delta) <= 1e-3)
    if ok.all():
        return
    from twin_core.errors import TwinWarning, twin_warn

    when = _when(e.created)
    twin_warn(f"scenario {e.scenario!r} has an edit of raster {name!r} ({delta:+g} over {kept.shape[0]} x "
              f"{kept.shape[1]} cells{', made ' + when if when else ''}) recorded as the cells it made, and the "
              f"ground under it changed since ({name!r} replaced, or a parent scenario's later edit there): "
              f"{int((~ok).sum())} of its cells are neither the ground under them nor that {delta:+g}, so the "
              "scenario shows the ground of then there. Take the edit back (twin scenario undo "
              f"STORE {e.scenario}, or twin.scenarios[{e.scenario!r}].undo()) and draw it again: edits made now "
              "hold on a replaced raster", TwinWarning)


def _old_delta(attrs: dict) -> float | None:
    """The delta of an old-format edit made with ``delta=`` (a finite number but 0), else None."""
    delta = attrs.get("delta")
    if not isinstance(delta, (int, float)) or isinstance(delta, bool) or not np.isfinite(delta) or delta == 0:
        return None
    return float(delta)


def _warn_if_old_edit_replaced(e, name: str, attrs: dict, kept: np.ndarray, written: pd.Timestamp | None) -> None:
    """Warn when an edit recorded the old way (the cells it made, by row and column, no grid) other than a delta
    (``values`` set) is pasted on a raster written after the edit was made (``written``, where the store knows
    it): the edit cannot tell whether ``name`` moved or went on another grid since, and its values then land on
    other ground than they were drawn on; the cells of its window it did not set (outside its polygon) show the
    ground of then. Such an edit cannot be re-applied (where it was drawn is not kept), so it is pasted as before,
    with this warning. A delta edit is checked against the ground under it (:func:`_warn_if_old_delta_moved`)."""
    made = pd.to_datetime(e.created, utc=True, errors="coerce", format="ISO8601")
    if written is None or pd.isna(made) or written <= made:
        return
    from twin_core.errors import TwinWarning, twin_warn

    what = "values set" if "values" in attrs else "cells pasted as made"
    when = _when(e.created)
    twin_warn(f"scenario {e.scenario!r} has an edit of raster {name!r} ({what} over {kept.shape[0]} x "
              f"{kept.shape[1]} cells{', made ' + when if when else ''}) recorded as the cells it made, by row and "
              f"column, and {name!r} was replaced since (written {written.strftime('%Y-%m-%d %H:%M UTC')}): if "
              f"{name!r} moved or is on another grid now, the edit's cells are pasted on other ground than it was "
              "drawn on, and where it set nothing the scenario shows the ground of then. Take the edit back (twin "
              f"scenario undo STORE {e.scenario}, or twin.scenarios[{e.scenario!r}].undo()) and draw it again: edits made now "
              "hold on a replaced raster", TwinWarning)


def _attrs_json(row: pd.Series, geom_col: str | None) -> str:
    d = {}
    for k, v in row.items():
        if k == geom_col:
            continue
        if isinstance(v, np.generic):
            v = v.item()
        if v is pd.NA or (isinstance(v, float) and np.isnan(v)):
            v = None
        d[k] = v
    return json.dumps(d, default=str)


# shapely type id -> family (0 point, 1 line, 2 ring, 3 polygon, 4-6 their multi-part forms); the layer's type name -> family
_FAMILY_OF_ID = {0: "point", 1: "line", 2: "line", 3: "polygon", 4: "point", 5: "line", 6: "polygon"}
_GEOM_FAMILY = {"POINT": "point", "MULTIPOINT": "point", "LINESTRING": "line", "MULTILINESTRING": "line",
                "POLYGON": "polygon", "MULTIPOLYGON": "polygon"}


def _typed(layer: str, frame, idf: str, types: dict[str, str], geom_col: str | None):
    """``frame`` with every field cast to the layer's column type; a clear error for an unknown field or a
    value that is not of its field's type (nothing is recorded then)."""
    fields = [c for c in frame.columns if c != geom_col]
    unknown = [c for c in fields if c not in types]
    if unknown:
        raise ScenarioError(f"layer {layer!r} has no field(s) {unknown}; its fields are {list(types)}")
    from cim.schema import FEATURE_CLASSES

    fc = FEATURE_CLASSES.get(layer)
    frame = frame.copy()
    for c in fields:
        if c == idf:
            continue
        t = types[c]
        f = fc.field(c) if fc is not None and c in fc.field_names else None
        out = []
        for fid, v in zip(frame[idf], frame[c]):
            try:
                out.append(cast_value(v, t))
            except (TypeError, ValueError, OverflowError):
                kind = {"int64": "an integer", "float64": "a finite number", "bool": "true or false",
                        "str": "a string"}.get(t, f"a {t} value")
                raise ScenarioError(f"field {c!r} of {layer!r} holds {kind}; feature {fid!r} gives {v!r}. "
                                    "Give a value of that type, or null") from None
            x = out[-1]
            if f is not None and f.has_range and x is not None and not isinstance(x, (str, bool)) and \
                    f.out_of_range([x])[0]:
                # the import's plausible ranges hold for edits too (a height of 1e300 was recorded)
                raise ScenarioError(f"field {c!r} of {layer!r} must lie {f.range_text()} ({f.range_why}); "
                                    f"feature {fid!r} gives {v!r}. Give a value in that range, or null")
        frame[c] = pd.Series(out, index=frame.index, dtype=object)
    return frame


def _check_geometries(layer: str, gdf, idf: str, geometry_type: str | None, *, required: bool) -> None:
    """Geometries of the layer's kind (a Polygon in a MultiPolygon layer is fine), with finite coordinates."""
    import shapely

    geoms = gdf.geometry.values
    ids = gdf[idf].to_numpy()
    missing = shapely.is_missing(geoms) | shapely.is_empty(geoms)
    if required and missing.any():
        raise ScenarioError(f"new features for {layer!r} need a geometry; {list(ids[missing])[:5]} have none")
    want = _GEOM_FAMILY.get((geometry_type or "").upper())
    if want is not None:
        wrong = ~missing & np.array([_FAMILY_OF_ID.get(int(t)) != want for t in shapely.get_type_id(geoms)], dtype=bool)
        if wrong.any():
            k = int(np.flatnonzero(wrong)[0])
            raise ScenarioError(f"{layer!r} holds {geometry_type.lower()} geometries; feature {ids[k]!r} is a "
                                f"{geoms[k].geom_type}")
    xy, at = shapely.get_coordinates(geoms, return_index=True)
    bad = ~np.isfinite(xy).all(axis=1)
    if bad.any():
        raise ScenarioError(f"feature {ids[at[bad][0]]!r} for {layer!r} has coordinates that are not finite numbers; "
                            "check its CRS (they must be in the twin's CRS, or lon/lat through the map)")
    invalid = ~missing & ~shapely.is_valid(geoms)
    if invalid.any():  # a bow-tie building: areas, overlays and the flood's rasterising go wrong on it later
        k = int(np.flatnonzero(invalid)[0])
        raise ScenarioError(f"feature {ids[k]!r} for {layer!r} has an invalid geometry: "
                            f"{shapely.is_valid_reason(geoms[k])}; redraw it so that it does not cross itself, or "
                            "repair it first (shapely.make_valid)")


class OutsideAreaError(ScenarioError):
    """An edit's features lie outside the area the twin's CRS covers; nothing was recorded.

    The message is worded for Python (reproject with ``gdf.to_crs``); the attributes let a caller word it for
    its own user (the map says "draw inside the city"):

    ``layer``, ``ids`` (the ids of the features outside, as text), ``bounds`` (their box in the twin's CRS),
    ``lonlat`` (that box in lon/lat, None where it does not transform), ``crs`` (the twin's CRS as given),
    ``crs_name`` (its name, e.g. ``CGCS2000 / 3-degree Gauss-Kruger CM 105E``) and ``area`` (its area of use,
    :func:`cim.crs.area_text`).
    """

    def __init__(self, layer: str, ids: list[str], bounds, crs) -> None:
        from cim.crs import area_text, fmt_box, lonlat_box, resolve_crs

        twin_crs = resolve_crs(crs)
        self.layer, self.ids, self.crs = layer, list(ids), crs
        self.bounds = tuple(float(v) for v in bounds)
        self.lonlat = lonlat_box(self.bounds, twin_crs)
        self.crs_name, self.area = twin_crs.name, area_text(twin_crs)
        hint = _lonlat_hint(self.bounds, crs, polygon=False, features=True)
        todo = ("" if hint else "; give their coordinates in the twin's CRS (reproject with gdf.to_crs("
                f"{crs!r}) from the CRS they were drawn in), or check that they belong to this city")
        n = len(self.ids)
        super().__init__(
            f"{_plural(n, 'feature')} for {layer!r} ({self.named()}) {'lies' if n == 1 else 'lie'} outside the area "
            f"the twin's CRS {crs} covers ({self.area}): their bounds are {fmt_box(self.bounds)}{hint}{todo}. "
            "Nothing was recorded"
        )

    def __reduce__(self):  # pickles (a job's process) with its attributes, not only the message
        return (type(self), (self.layer, self.ids, self.bounds, self.crs))

    def named(self, most: int = 5) -> str:
        """``"'a', 'b' and 3 more"``: the features outside, for a message."""
        ids = self.ids
        return ", ".join(map(repr, ids[:most])) + (f" and {len(ids) - most} more" if len(ids) > most else "")


def _check_in_area(layer: str, gdf, idf: str, crs) -> None:
    """Geometries inside the area the twin's CRS covers (its area of use, with the margin an import allows:
    :func:`cim.crs.in_area_of_use`): lon/lat given as metres put a building at (104.06, 30.66) m, thousands of
    kilometres from the city. Nothing to compare for a store without a CRS or a CRS without a declared area.
    Refused with an :class:`OutsideAreaError`."""
    import shapely

    from cim.crs import in_area_of_use, resolve_crs

    if crs is None:
        return
    twin_crs = resolve_crs(crs)
    if twin_crs.area_of_use is None:
        return
    geoms = gdf.geometry.values
    present = ~(shapely.is_missing(geoms) | shapely.is_empty(geoms))
    if not present.any():
        return
    bounds = shapely.bounds(geoms[present])
    outside = ~in_area_of_use(bounds, twin_crs)
    if not outside.any():
        return
    ids = [str(i) for i in gdf[idf].to_numpy()[present][outside]]
    b = bounds[outside]
    raise OutsideAreaError(layer, ids, (b[:, 0].min(), b[:, 1].min(), b[:, 2].max(), b[:, 3].max()), crs)


def _orphan_mask(edits: pd.DataFrame, base_ids) -> np.ndarray:
    """Which rows of a feature-edit log (one layer, one scenario chain, in order) change or remove a feature
    that is neither in ``base_ids`` nor added by an earlier edit: rows that change nothing (an orphaned edit,
    most likely of a base layer replaced since without the feature)."""
    added: set[str] = set()
    out = np.zeros(len(edits), dtype=bool)
    for i, (op, fid) in enumerate(zip(edits["op"], edits["feature_id"])):
        fid = str(fid)
        if op == "add":
            added.add(fid)
        elif op in ("modify", "remove") and fid not in base_ids and fid not in added:
            out[i] = True
    return out


def _edit_what(rows: pd.DataFrame) -> str:
    """What one edit (its rows) does, in words: ``close roads (capacity_vph 0)``, ``modify height_m``,
    ``remove``."""
    op = rows["op"].iloc[0]
    if op != "modify":
        return str(op)
    values = [json.loads(a) if isinstance(a, str) else {} for a in rows["attrs"]]
    if values and all(v == {"capacity_vph": 0.0} or v == {"capacity_vph": 0} for v in values):
        return "close roads (capacity_vph 0)"
    fields = sorted({k for v in values for k in v})
    has_geom = "geom_wkb" in rows and rows["geom_wkb"].notna().any()
    return "modify " + ", ".join(fields + (["geometry"] if has_geom else [])) if fields or has_geom else "modify"


def _orphan_text(own: pd.DataFrame, orphan: np.ndarray, layer: str) -> list[tuple[str, str]]:
    """One phrase per scenario edit that has orphaned rows, each with its scenario's name: ``scenario 'works',
    its edit recorded 2026-12-05 07:20 UTC (close roads (capacity_vph 0)): 2 of its 2 features gone ('l1',
    'l2')``. ``own``: the rows of the edit log of the scenarios concerned, each scenario's in order (``orphan``:
    which rows are orphaned)."""
    own = own.assign(_orphan=orphan)
    out = []
    for scen, rows in own.groupby("scenario", sort=True):
        times = list(dict.fromkeys(rows["created"]))  # one edit: the rows one call recorded together
        for t in times:
            edit = rows[rows["created"] == t]
            gone = edit[edit["_orphan"] & (edit["target"] == layer) & edit["op"].isin(["modify", "remove"])]
            if not len(gone):
                continue
            ids = [str(i) for i in gone["feature_id"]]
            named = ", ".join(map(repr, ids[:5])) + (f" and {len(ids) - 5} more" if len(ids) > 5 else "")
            out.append((str(scen), f"scenario {scen!r}, its edit recorded {_when(t)} ({_edit_what(edit)}): "
                                   f"{len(gone)} of its {_plural(len(edit), 'feature')} gone ({named})"))
    return out


def _chain_rows(edits: pd.DataFrame, meta: dict, name: str) -> pd.DataFrame:
    """The rows of ``edits`` (the edit log, in order) of scenario ``name`` and its parents, oldest first."""
    chain, n = [], name
    while n != BASE and n not in chain:
        chain.append(n)
        n = meta.get(n, {}).get("parent", BASE)
    order = {c: i for i, c in enumerate(chain[::-1])}
    sub = edits[edits["scenario"].isin(order)]
    return sub.assign(_o=sub["scenario"].map(order)).sort_values(["_o", "seq"], kind="stable").drop(columns="_o")


def replaced_layer_orphans(store, layer: str, new_ids) -> str | None:
    """What replacing ``layer`` with features of ids ``new_ids`` takes from the scenarios: a
    :class:`~twin_core.errors.TwinWarning` message naming each scenario edit (close roads, modify, remove) whose
    features the new layer no longer holds (they were in the layer, they are not in the new one, and the
    scenario did not add them itself), how many of its features are gone, and what to do; None when none is.
    Read before the layer is written (``cim.io.vector.import_vector``, ``twin import``).

    Such an edit changes nothing afterwards: ``scenario diff`` shows no difference, and a run of the scenario is
    a run of the base there, while ``scenario list`` still counts the edit.
    """
    if not store.has_table(EDITS_TABLE) or not store.has_layer(layer):
        return None
    try:
        idf = id_field_of(layer)
    except ScenarioError:
        cols = store.layer_info(layer)["columns"]
        if "id" not in cols:
            return None
        idf = "id"
    if idf not in store.layer_info(layer)["columns"]:
        return None
    edits = store.read_table(EDITS_TABLE, columns=["seq", "scenario", "op", "target", "feature_id", "attrs",
                                                   "created"], where={"target": layer}, order_by="seq")
    edits = edits[edits["op"].isin(["add", "modify", "remove"])]
    if not len(edits):
        return None
    new_ids = {str(i) for i in new_ids}
    old_ids = set(store.read_layer(layer, columns=[idf])[idf].dropna().astype(str))
    dropped = old_ids - new_ids
    if not (set(edits["feature_id"].astype(str)) & dropped):
        return None
    meta = Scenarios(store)._meta()
    parts = []
    for scen in sorted(set(edits["scenario"])):
        chain = _chain_rows(edits, meta, scen)
        mask = _orphan_mask(chain, new_ids) & chain["feature_id"].astype(str).isin(dropped).to_numpy()
        own = (chain["scenario"] == scen).to_numpy()
        parts += _orphan_text(chain[own], mask[own], layer)
    if not parts:
        return None
    hit = sorted({n for n, _ in parts})  # the scenarios named, for the undo hint
    undo = f"twin scenario undo STORE {hit[0]}" if len(hit) == 1 else "twin scenario undo STORE SCENARIO"
    return (f"replacing layer {layer!r} drops features that scenario edits refer to, so those edits no longer change "
            f"anything (scenario diff shows nothing for them, a run of the scenario runs the base there): "
            f"{'; '.join(t for _, t in parts)}. To keep those features, import with --append (Python: "
            "mode='append') to add to the layer instead of replacing it; or, if the new layer is right, re-draw "
            f"the edit on it and take the old one back with {undo} (Python: twin.scenario(name).undo())")


def _parts_owner(parts: list[tuple[str, str]], scenario: str) -> str:
    """The one scenario ``parts`` (of :func:`_orphan_text`) name, else ``scenario`` if it is among them, else
    ``SCENARIO``: which scenario an undo of the orphaned edit is run on."""
    names = sorted({n for n, _ in parts})
    return names[0] if len(names) == 1 else scenario if scenario in names else "SCENARIO"


#: the orphaned-edit warnings given in this process (:func:`_warn_orphans`), by store, scenario, layer and the
#: state of the edit log and of the base layer, oldest first; at most _ORPHANS_WARNED_MAX kept
_ORPHANS_WARNED: "OrderedDict[tuple, None]" = OrderedDict()
_ORPHANS_WARNED_MAX = 1024
_ORPHANS_LOCK = threading.Lock()


def _orphans_key(store, scenario: str, layer: str, log: pd.DataFrame, orphan: np.ndarray) -> tuple:
    """What makes an orphaned-edit warning new: the store, the scenario and layer, the state of the scenario
    chain's edit log (every row's scenario, seq and time: an edit, or an undo, changes it) and of the base layer
    (when it was last written, :meth:`~cim.store.base.Store.layer_written`, and which edit rows it leaves
    orphaned)."""
    from twin_core.errors import TwinError

    try:
        written = store.layer_written(layer)
    except (TwinError, LookupError):  # deleted meanwhile: the orphan rows still tell one base from another
        written = None
    rows = (tuple(zip(log["scenario"].astype(str), log["seq"].astype("int64").tolist(), log["created"].astype(str)))
            if len(log) else ())
    where = (type(store).__name__, str(getattr(store, "uri", id(store))), str(getattr(store, "schema", "")))
    return (where, scenario, layer, hash(rows), None if written is None else str(written),
            np.asarray(orphan, dtype=bool).tobytes())


def _first_warning(key: tuple) -> bool:
    """True the first time ``key`` is seen in this process (then remembered)."""
    with _ORPHANS_LOCK:
        if key in _ORPHANS_WARNED:
            _ORPHANS_WARNED.move_to_end(key)
            return False
        _ORPHANS_WARNED[key] = None
        while len(_ORPHANS_WARNED) > _ORPHANS_WARNED_MAX:
            _ORPHANS_WARNED.popitem(last=False)
        return True


def _warn_orphans(scenario: str, layer: str, edits: pd.DataFrame, orphan: np.ndarray, *, store=None,
                  log: pd.DataFrame | None = None) -> None:
    """Warn (:class:`~twin_core.errors.TwinWarning`) that edits of ``scenario``'s chain on ``layer`` refer to
    features the base no longer holds (``orphan``: which rows of ``edits``).

    With ``store`` (and ``log``, the scenario chain's whole edit log), once per process for one scenario, layer,
    state of the edit log and state of the base layer (:func:`_orphans_key`): a map server reads the scenario's
    layers on every request and logged the same warning each time. A new edit (or an undo) of the scenario or a
    parent, or the layer written again, warns again."""
    from twin_core.errors import TwinWarning, twin_warn

    parts = _orphan_text(edits, orphan, layer)
    if not parts:
        return
    if store is not None and not _first_warning(_orphans_key(store, scenario, layer, edits if log is None else log,
                                                             orphan)):
        return
    twin_warn(f"reading scenario {scenario!r}: edits of layer {layer!r} refer to features no longer in the base layer "
              f"(replaced since without them?), so they change nothing: {'; '.join(t for _, t in parts)}. Bring "
              "the features back (import them with --append), or re-draw the edit on today's layer and take the "
              f"old one back with twin scenario undo STORE {_parts_owner(parts, scenario)} (Python: "
              "twin.scenario(name).undo())", TwinWarning)


def _cast_like(series: pd.Series, value: str):
    if pd.api.types.is_integer_dtype(series.dtype):
        return int(value)
    return value


def _apply_feature_edits(gdf, edits: pd.DataFrame, idf: str):
    """Apply an ordered add/remove/modify log to a layer in bulk.

    The log is first folded into the final state of each touched feature (one
    pass over the edits, no frame work), then applied with one drop, one
    assignment per changed column and one concat, so that a scenario with
    thousands of edits costs about one copy of the layer, not one per edit.
    The result equals applying the edits one at a time in order: removed
    features are dropped, modified base features keep their place, added (or
    removed and re-added) features come last in the order of their last add.
    """
    import geopandas as gpd
    import shapely

    geom_col = gdf.geometry.name
    columns = set(gdf.columns)
    gdf = gdf.copy()
    gdf.index = pd.Index(gdf[idf].astype(str).to_numpy(dtype=object))
    base_ids = set(gdf.index)
    # fid -> None (absent) or [kind ("base" | "add"), attrs, geometry WKB or None, add order]
    state: dict[str, list | None] = {}
    n_added = 0
    for op, fid, attrs, wkb in zip(edits["op"], edits["feature_id"], edits["attrs"], edits["geom_wkb"]):
        fid = str(fid)
        cur = state[fid] if fid in state else (["base", {}, None, -1] if fid in base_ids else None)
        values = {k: v for k, v in json.loads(attrs).items() if k in columns} if isinstance(attrs, str) else {}
        wkb = wkb if isinstance(wkb, str) else None
        if op == "remove":
            cur = None
        elif op == "add":
            cur = ["add", values, wkb, n_added]
            n_added += 1
        elif op == "modify" and cur is not None:
            cur[1].update(values)
            if wkb is not None:
                cur[2] = wkb
        state[fid] = cur

    gone = [fid for fid, cur in state.items() if fid in base_ids and (cur is None or cur[0] == "add")]
    if gone:
        gdf = gdf.drop(index=gone)
    changed = [(fid, cur) for fid, cur in state.items() if cur is not None and cur[0] == "base" and (cur[1] or cur[2])]
    per_column: dict[str, tuple[list, list]] = {}
    new_geoms: tuple[list, list] = ([], [])
    for fid, (_, values, wkb, _) in changed:
        for k, v in values.items():
            ids, vals = per_column.setdefault(k, ([], []))
            ids.append(fid)
            vals.append(v)
        if wkb is not None:
            new_geoms[0].append(fid)
            new_geoms[1].append(wkb)
    for k, (ids, vals) in per_column.items():
        if k == geom_col:
            continue
        new_vals = pd.Series(vals, index=ids)
        if new_vals.isna().any() and not isinstance(gdf[k].dtype, pd.api.extensions.ExtensionDtype):
            # an edit that sets a value to null (unknown) in a column of plain integers or booleans, which
            # have no null: to pandas' nullable type (setting it raised "Invalid value '[None]' for dtype")
            if pd.api.types.is_integer_dtype(gdf[k].dtype):
                gdf[k] = gdf[k].astype("Int64")
            elif pd.api.types.is_bool_dtype(gdf[k].dtype):
                gdf[k] = gdf[k].astype("boolean")
        gdf.loc[ids, k] = new_vals
    if new_geoms[0]:
        gdf.loc[new_geoms[0], geom_col] = gpd.GeoSeries(
            shapely.from_wkb(new_geoms[1]), index=new_geoms[0], crs=gdf.crs)

    adds = sorted(((cur[3], fid, cur) for fid, cur in state.items() if cur is not None and cur[0] == "add"))
    if adds:
        rows = []
        for _, fid, (_, values, _, _) in adds:
            row = {c: None for c in gdf.columns}
            row.update(values)
            row[idf] = _cast_like(gdf[idf], fid)
            rows.append(row)
        geoms = shapely.from_wkb([cur[2] for _, _, cur in adds])
        new = gpd.GeoDataFrame(rows, index=[fid for _, fid, _ in adds], columns=list(gdf.columns))
        new[geom_col] = geoms
        new = gpd.GeoDataFrame(new, geometry=geom_col, crs=gdf.crs)
        new = new.astype({c: gdf[c].dtype for c in gdf.columns if c != geom_col}, errors="ignore")
        gdf = pd.concat([gdf, new])
    return gpd.GeoDataFrame(gdf, geometry=geom_col, crs=gdf.crs).reset_index(drop=True)

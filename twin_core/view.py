"""``view(twin)``: the twin as a pydeck ``Deck`` that renders offline in Jupyter.

The page pydeck writes loads deck.gl from a CDN (and basemap styles from the
web); the :class:`OfflineDeck` returned here inlines the deck.gl bundle that
ships inside the pydeck wheel (``pydeck/nbextension/static/index.js``) and
references nothing outside the notebook, so it renders on machines without
internet. No basemap: the DEM hillshade is the ground.

For whole cities use the map server (``twin serve``): it streams vector tiles
(tens of bytes per building) instead of inline GeoJSON (hundreds).

``view(twin, result=RUN)`` (or ``result=(RUN, NAME)``) puts a stored result on the map, with a legend (the
colour scale, drawn on the page and kept as ``deck.legend``):

- a raster (flood ``max_depth``, ``hazard``, crowd ``max_density``, ``sunlight_hours``, ``viewshed`` ...): a
  bitmap coloured as on the map server (``viewer.imaging``): water depth on the blue ``depth`` ramp, dry
  below 0.01 m and darkest from ``vmax`` (2 m unless given) up; anything else on viridis from ``vmin`` to
  ``vmax`` (the result's own range unless given);
- a flood's ``depth_snapshots`` or a crowd's ``density`` at ``time=``: the NEAREST stored snapshot (no
  interpolation between snapshots: what is shown is a state the engine computed; the legend gives its time);
- a traffic run's ``link_loads`` / ``link_flows``: the links coloured by V/C as on the map page (green 0 to
  red 1.2 and over, grey without a value, dark grey closed);
- a table whose rows name features (``exposure_buildings``, ``exposure_road_links``, ``access_buildings``
  ...): those features as of the run's scenario, coloured by ``max_depth_m`` (depth ramp), ``vc`` or
  else the first numeric column (viridis; grey where empty).

Examples
--------
>>> import tempfile, os, sample_city                           # doctest: +SKIP
>>> from twin_core import Twin                                 # doctest: +SKIP
>>> from twin_core.view import view                            # doctest: +SKIP
>>> deck = view(Twin.open("city.gpkg"), layers=("buildings", "road_links"))  # doctest: +SKIP
>>> deck                                  # renders in Jupyter  # doctest: +SKIP
"""

from __future__ import annotations

import base64
import html as html_mod
import json
import os
import warnings
from typing import Sequence

__all__ = ["view", "OfflineDeck", "pydeck_bundle_path", "MAIN_RESULTS", "TIMED_RESULTS"]

COLOUR_BY = ("height_m", "use", None)
_USE = {"residential": [241, 196, 120], "commercial": [235, 120, 110], "office": [120, 170, 235],
        "industrial": [170, 150, 200], "public": [120, 200, 160], "school": [250, 230, 110],
        "hospital": [255, 140, 180], "mixed": [200, 200, 200]}

#: the result ``view(twin, result=RUN)`` shows when only the run is named: the first of these the run has
MAIN_RESULTS = ("max_depth", "link_loads", "link_flows", "max_density", "sunlight_hours", "viewshed",
                "access_buildings", "comparison", "exposure_buildings")
#: ... and with ``time=``: the stacks of snapshots
TIMED_RESULTS = ("depth_snapshots", "density")
#: the columns a table or layer result is coloured by, first found wins (else its first numeric column)
COLOUR_FIELDS = ("vc", "v_c", "voc", "max_depth_m", "time_s", "dry_time_s", "delta_vc", "flow", "volume")
NO_VALUE = [130, 140, 150, 200]  # a feature without a value (grey, as vcColour in viewer/static/app.js)
CLOSED = [70, 70, 80, 255]  # a closed link (as on the map page)


def pydeck_bundle_path() -> str:
    """The deck.gl bundle shipped in the pydeck wheel."""
    import pydeck

    p = os.path.join(os.path.dirname(pydeck.__file__), "nbextension", "static", "index.js")
    if not os.path.isfile(p):
        from twin_core.errors import TwinError

        raise TwinError(f"the pydeck wheel has no bundled deck.gl at {p}; reinstall pydeck (pip install --force-reinstall pydeck)")
    return p


_TEMPLATE = """<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>{title}</title>
<style>html,body{{margin:0;height:100%;background:#0b0e12}}#deck-container{{position:relative;width:100%;height:100%}}</style>
<script>{bundle}</script>
</head><body><div id="deck-container"></div>{legend}
<script>
window.__deckReady = false;
const container = document.getElementById('deck-container');
const jsonInput = {json_input};
window.__deck = createDeck({{container, jsonInput, tooltip: {tooltip}, customLibraries: null, configuration: null}});
window.__deckReady = true;
</script></body></html>
"""


def _offline_html(deck_json: str, tooltip, title: str, legend: dict | None = None) -> str:
    with open(pydeck_bundle_path(), encoding="utf-8") as fh:
        bundle = fh.read()
    safe_json = deck_json.replace("</", "<\\/")
    tip = "true" if tooltip is True else ("false" if tooltip is False else json.dumps(tooltip))
    return _TEMPLATE.format(title=html_mod.escape(title), bundle=bundle, json_input=safe_json, tooltip=tip,
                            legend=_legend_html(legend))


def _legend_html(legend: dict | None) -> str:
    """The colour scale as a small box in the map's corner (plain HTML: nothing to load)."""
    if not legend:
        return ""
    esc = html_mod.escape
    stops = legend["stops"]
    lo, hi = stops[0][0], stops[-1][0]
    span = (hi - lo) or 1.0

    def css(c):
        return f"rgba({c[0]},{c[1]},{c[2]},{c[3] / 255:.2f})"

    grad = ", ".join(f"{css(c)} {100 * (v - lo) / span:.1f}%" for v, c in stops)
    unit = f" {legend['unit']}" if legend.get("unit") else ""
    note = f"<div>{esc(legend['note'])}</div>" if legend.get("note") else ""
    return (f'<div id="legend" style="position:absolute;left:10px;bottom:10px;z-index:1;padding:6px 8px;'
            f'background:rgba(20,24,30,.85);color:#eee;font:12px sans-serif;border-radius:4px;min-width:180px">'
            f'<b>{esc(legend["title"])}</b><div>{esc(legend["field"])}{esc(unit)}</div>'
            f'<div style="height:10px;margin:4px 0;background:linear-gradient(to right, {grad})"></div>'
            f'<div style="display:flex;justify-content:space-between"><span>{esc(legend["low"])}</span>'
            f'<span>{esc(legend["high"])}</span></div>{note}</div>')


def _deck_class():
    import pydeck

    class OfflineDeck(pydeck.Deck):
        """A pydeck Deck whose HTML inlines the local deck.gl bundle (no CDN, no basemap)."""

        def to_html(self, filename=None, open_browser=False, notebook_display=None, iframe_width="100%",
                    iframe_height=520, as_string=False, offline=True, **kwargs):
            page = _offline_html(self.to_json(), self._tooltip, getattr(self, "_twin_title", "RongTwin"),
                                 getattr(self, "legend", None))
            if filename:
                with open(filename, "w", encoding="utf-8") as fh:
                    fh.write(page)
                return os.path.abspath(filename)
            if as_string or not notebook_display:
                return page
            from IPython.display import HTML

            return HTML(_iframe(page, iframe_width, iframe_height))

        def _repr_html_(self):
            return _iframe(_offline_html(self.to_json(), self._tooltip, getattr(self, "_twin_title", "RongTwin"),
                                         getattr(self, "legend", None)), "100%", 520)

        def show(self):
            return self.to_html(notebook_display=True)

        def to_json(self):
            # the legend is drawn by the page around the deck, not a deck.gl prop: kept out of the deck's JSON
            legend = self.__dict__.pop("legend", None)
            try:
                return super().to_json()
            finally:
                self.legend = legend

    return OfflineDeck


def _iframe(page: str, width, height) -> str:
    w = f'"{width}"' if isinstance(width, str) else width
    return f'<iframe width={w} height={height} frameborder="0" srcdoc="{html_mod.escape(page)}"></iframe>'


def OfflineDeck(*args, **kwargs):  # noqa: N802 - a factory that reads like the class
    """Build an offline deck (see :func:`view`)."""
    return _deck_class()(*args, **kwargs)


def _hillshade_layer(twin, scenario):
    from viewer.imaging import render_png

    if "dem" not in twin.rasters():
        return None
    dem = twin.raster("dem", scenario=scenario)
    with warnings.catch_warnings():
        # rasterio's calculate_default_transform composes affines with the `*` that affine 2.4 deprecates: one
        # PendingDeprecationWarning per twin.view() in a notebook, none of it ours to act on
        warnings.filterwarnings("ignore", message="Use `@` matmul", category=PendingDeprecationWarning)
        png, bounds, _ = render_png(dem, "hillshade")
    return _bitmap_layer("hillshade", png, bounds, 1.0)


def _bitmap_layer(layer_id: str, png: bytes, bounds, opacity: float):
    """A BitmapLayer of ``png`` (inline, at most 800 pixels a side) over ``bounds`` (lon/lat)."""
    import io

    import pydeck
    from PIL import Image

    img = Image.open(io.BytesIO(png))
    if max(img.size) > 800:  # keep the inline image small
        img.thumbnail((800, 800))
        buf = io.BytesIO()
        img.save(buf, format="PNG")
        png = buf.getvalue()
    url = "data:image/png;base64," + base64.b64encode(png).decode()
    # a plain string would be read as a deck.gl JSON expression ("@@="); types.String keeps it literal
    return pydeck.Layer("BitmapLayer", id=layer_id, image=pydeck.types.String(url), bounds=bounds, opacity=opacity)


def view(twin, layers: str | Sequence[str] | None = None, *, scenario: str | None = None,
         result: str | tuple[str, str] | None = None, time=None, vmin: float | None = None,
         vmax: float | None = None, colour_by: str | None = "height_m", hillshade: bool = True,
         max_features: int = 50_000, pitch: float = 45.0):
    """The twin (as of ``scenario``) as an offline pydeck Deck for notebooks, optionally with a stored result.

    Parameters
    ----------
    twin : twin_core.Twin
    layers : a vector layer name, or names, to show (buildings are extruded by ``height_m``). Default:
        ``"buildings"``; with a ``result``, none (the result over the hillshade: pass ``layers="buildings"``
        to add them).
    scenario : show the layers as of this scenario (default: the base). With a ``result``: the scenario its
        run is under (needed only when the run id is under several; default: the run's own, and the
        layers are shown as of it).
    result : a run id (its main result: the first of :data:`MAIN_RESULTS` it has, or with ``time`` the first
        of :data:`TIMED_RESULTS`), or ``(run id, result name)``. See the module docstring for how each kind
        is drawn and coloured; ``deck.legend`` holds the colour scale (``stops``: [value, RGBA] pairs).
    time : for ``depth_snapshots`` / ``density``: seconds from the scenario start, or ``"30min"``; the
        nearest stored snapshot is shown (not interpolated), and ``deck.legend["time_s"]`` says which.
    vmin, vmax : the colour scale's range (default: 0.01..2 m for depths, the values' own range otherwise;
        give both to compare runs on one scale).
    colour_by : ``"height_m"``, ``"use"`` or None (buildings only; None greys them, which sets off the
        buildings a result colours: those are drawn by the result's layer, not twice).
    hillshade : put the DEM hillshade under everything (when the twin has a ``dem``).
    max_features : refuse layers larger than this (inline GeoJSON costs ~435 bytes a building;
        use ``twin serve`` for whole cities).

    Examples
    --------
    >>> view(twin, result="flood-1")                                     # max_depth  # doctest: +SKIP
    >>> view(twin, result=("flood-1", "depth_snapshots"), time="30min")  # doctest: +SKIP
    >>> view(twin, "buildings", result=("flood-1", "exposure_buildings"))  # doctest: +SKIP
    """
    import pydeck

    from twin_core.errors import FieldError, LayerNotFoundError, ParameterError

    if layers is None:
        layers = () if result is not None else ("buildings",)
    if isinstance(layers, str):  # layers="buildings" means that one layer, not its letters
        layers = (layers,)
    if colour_by not in COLOUR_BY:
        raise ParameterError(f"colour_by must be one of {list(COLOUR_BY)}, got {colour_by!r}")
    if result is None and (time is not None or vmin is not None or vmax is not None):
        given = [k for k, v in (("time", time), ("vmin", vmin), ("vmax", vmax)) if v is not None]
        raise ParameterError(f"{', '.join(given)} apply to a result: pass result=RUN or result=(RUN, NAME) too")
    have = twin.layers()
    missing = [n for n in layers if n not in have]
    if missing:
        raise LayerNotFoundError(f"no layer(s) {missing} in the twin; layers: {have}")
    shown = None
    if result is not None:
        shown = _resolve_result(twin, result, scenario, time)
        scenario = None if shown["scenario"] == "base" else shown["scenario"]
    from viewer.geo import frame_to_geojson, to_wgs84
    from viewer.scene import camera_for

    deck_layers = []
    if hillshade:
        hs = _hillshade_layer(twin, scenario)
        if hs is not None:
            deck_layers.append(hs)
    legend, result_layer, covers = None, None, set()
    if shown is not None:
        result_layer, legend, covers = _result_layer(twin, shown, time=time, vmin=vmin, vmax=vmax,
                                                     max_features=max_features)
    for name in layers:
        n = twin.store.layer_info(name)["count"]
        if n > max_features:
            raise ParameterError(f"layer {name!r} has {n} features, more than max_features={max_features}; inline "
                                 "GeoJSON that large stalls the notebook: pass a bbox-limited twin, raise the limit, "
                                 "or use `twin serve` (vector tiles)")
        gdf = twin.layer(name, scenario=scenario)
        if name == "buildings":  # only what the map shows and the tooltip names: inline JSON is costly
            if colour_by is not None and colour_by not in gdf.columns:
                raise FieldError(f"colour_by={colour_by!r} needs a {colour_by!r} column in buildings; its columns are "
                                 f"{[c for c in gdf.columns if c != gdf.geometry.name]}: add the field, or pass "
                                 f"another colour_by (one of {[c for c in COLOUR_BY if c != colour_by]})")
            gdf = gdf[[c for c in ("building_id", "height_m", "use", "storeys") if c in gdf.columns] + [gdf.geometry.name]]
            if covers and "building_id" in gdf.columns:  # the result draws these, coloured by its values
                gdf = gdf[~gdf["building_id"].isin(covers)]
            if colour_by == "height_m":
                h = gdf["height_m"].astype(float).fillna(0).clip(0, 120) / 120
                gdf["_colour"] = [[int(60 + 190 * x), int(140 + 60 * (1 - x)), int(230 - 150 * x), 235] for x in h]
            elif colour_by == "use":
                gdf["_colour"] = [_USE.get(u, [190, 190, 190]) + [235] for u in gdf["use"]]
            else:
                gdf["_colour"] = [[200, 200, 200, 235]] * len(gdf)
        gj = frame_to_geojson(gdf, twin.crs)
        geom = twin.store.layer_info(name)["geometry_type"].upper()
        common = dict(id=name, data=gj, pickable=True, auto_highlight=True)
        if name == "buildings":
            deck_layers.append(pydeck.Layer("GeoJsonLayer", extruded=True, get_elevation="properties.height_m",
                                            get_fill_color="properties._colour", get_line_color=[40, 40, 40],
                                            **common))
        elif "POINT" in geom:
            deck_layers.append(pydeck.Layer("GeoJsonLayer", point_type="circle", get_point_radius=6,
                                            point_radius_min_pixels=3, get_fill_color=[80, 220, 120, 230], **common))
        elif "LINE" in geom:
            deck_layers.append(pydeck.Layer("GeoJsonLayer", get_line_color=[150, 160, 175, 220], line_width_min_pixels=1,
                                            **common))
        else:
            deck_layers.append(pydeck.Layer("GeoJsonLayer", get_fill_color=[90, 130, 200, 120],
                                            get_line_color=[90, 130, 200, 255], line_width_min_pixels=1, **common))
    if result_layer is not None:
        deck_layers.append(result_layer)
    ext = twin.extent
    cam = camera_for(to_wgs84(ext, twin.crs)) if ext else {"longitude": 104.06, "latitude": 30.66, "zoom": 12}
    vs = pydeck.ViewState(longitude=cam["longitude"], latitude=cam["latitude"], zoom=max(cam["zoom"] - 0.5, 1),
                          pitch=pitch, bearing=0)
    deck = OfflineDeck(layers=deck_layers, initial_view_state=vs, map_provider=None, map_style=None,
                       tooltip={"text": "{building_id} {height_m} m {use}"}
                       if "buildings" in layers and shown is None else True)
    deck._twin_title = f"RongTwin: {twin.name}" + (f" - {legend['title']}" if legend else "")
    deck.legend = legend
    return deck


# -- results on the map ------------------------------------------------------------------------------------------
def _resolve_result(twin, result, scenario, time) -> dict:
    """{scenario, run, name, kind, ref} of the stored result ``result`` names; clear errors otherwise (those of
    :func:`twin_core.adapters.results_export.find_result`, as twin.snapshots and twin.export_result give)."""
    from twin_core.adapters.results_export import find_result
    from twin_core.errors import LayerNotFoundError, ParameterError

    if isinstance(result, str):
        run, name = result, None
    elif isinstance(result, (tuple, list)) and len(result) == 2 and all(isinstance(v, str) for v in result):
        run, name = result
    else:
        raise ParameterError(f"result must be a run id or (run id, result name), e.g. ('flood-1', 'max_depth'); "
                             f"got {result!r}")
    def main(names):  # the run's main result, when only the run is named
        pool = TIMED_RESULTS if time is not None else MAIN_RESULTS
        hit = next((n for n in pool if n in names), None)
        if hit is None:
            raise LayerNotFoundError(f"run {run!r} has none of the results view() shows when only the run is "
                                     f"named{' with time=' if time is not None else ''} ({', '.join(pool)}); name "
                                     f"one: result=({run!r}, NAME), NAME one of {names}")
        return hit

    r = find_result(twin, run, name, scenario, default=main)
    return {"scenario": r.scenario, "run": r.run, "name": r.name, "kind": r.kind, "ref": r.ref}


def _legend(title: str, field: str, unit, style: str, lo: float, hi: float, **extra) -> dict:
    """The colour scale of ``style`` (a :data:`viewer.imaging.STYLES` ramp, or ``"vc"``) from ``lo`` to ``hi``:
    ``stops`` are [value, RGBA] pairs sampled from the very function that colours the image or the features."""
    import numpy as np

    vals = np.linspace(lo, hi, 5)
    cols = _colours(vals, style, lo, hi)
    out = {"title": title, "field": field, "unit": unit, "style": style, "vmin": float(lo), "vmax": float(hi),
           "stops": [[float(v), [int(x) for x in c]] for v, c in zip(vals, cols)],
           "low": f"{lo:.3g}", "high": f"{hi:.3g}" + (" and over" if style in ("depth", "vc") else "")}
    out.update(extra)
    return out


def _colours(values, style: str, lo: float, hi: float):
    """RGBA (n, 4) uint8 for ``values``: the map server's ramps (``viewer.imaging.colourise``) and V/C ramp."""
    import numpy as np

    from viewer.imaging import colourise

    v = np.asarray(values, dtype="float64")
    if style == "vc":  # the map page's vcColour (viewer/static/app.js): green 0 .. red 1.2 and over
        x = np.clip(np.nan_to_num(v, nan=0.0), 0, 1.2) / 1.2
        out = np.stack([40 + 215 * x, 200 - 170 * x * x, np.full_like(x, 60), np.full_like(x, 255)], -1)
        out = out.astype(np.uint8)
    else:
        out = colourise(v[None, :], style, lo, hi)[0]
    out[~np.isfinite(v)] = NO_VALUE
    return out


def _scale(style: str, values, vmin, vmax) -> tuple[float, float]:
    """(low, high) of the colour scale: V/C 0..1.2; depth 0.01 (below: dry) .. 2 m; a difference -m..m round 0;
    else the values' range."""
    import numpy as np

    if style == "vc":
        return 0.0, 1.2
    if style == "depth":
        return (0.01 if vmin is None else float(vmin)), (2.0 if vmax is None else float(vmax))
    if style == "diff":  # round 0: no change in the middle of the ramp (viewer.imaging.colourise)
        from viewer.imaging import diff_range

        return diff_range(values, vmin, vmax)
    a = np.asarray(values)
    ok = np.isfinite(a).any() if a.size else False
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        lo = float(vmin) if vmin is not None else (float(np.nanmin(a)) if ok else 0.0)
        hi = float(vmax) if vmax is not None else (float(np.nanmax(a)) if ok else 1.0)
    return (lo, hi) if hi > lo else (lo, lo + 1.0)


def _result_layer(twin, shown: dict, *, time, vmin, vmax, max_features: int):
    """(a pydeck layer, its legend, the ids of the buildings it draws) for the resolved result ``shown``."""
    from twin_core.errors import ParameterError

    scen, run, name, kind = shown["scenario"], shown["run"], shown["name"], shown["kind"]
    if time is not None and kind != "array":
        raise ParameterError(f"time= picks a snapshot of a stack ({', '.join(TIMED_RESULTS)}); result {name!r} "
                             f"of run {run!r} is a {kind} with no times: leave time out")
    if vmin is not None and vmax is not None and not vmin < vmax:
        raise ParameterError(f"vmin ({vmin}) must be below vmax ({vmax})")
    if kind in ("raster", "array"):
        return (*_grid_layer(twin, shown, time=time, vmin=vmin, vmax=vmax), set())
    if kind in ("layer", "table"):
        return _feature_layer(twin, shown, vmin=vmin, vmax=vmax, max_features=max_features)
    raise ParameterError(f"result {name!r} of run {run!r} is a {kind} (e.g. a summary): nothing to draw on a map; "
                         f"twin.load_result({scen!r}, {run!r}, {name!r}) gives it")


def _grid_layer(twin, shown: dict, *, time, vmin, vmax):
    import numpy as np

    from twin_core.errors import ParameterError
    from twin_core.units import parse_offset
    from viewer.imaging import render_png, style_for

    scen, run, name = shown["scenario"], shown["run"], shown["name"]
    extra = {}
    if shown["kind"] == "raster":
        raster = twin.load_result(scen, run, name)
        values = raster.masked()
        whole = values
    else:
        stack = twin.snapshots(run, name, scenario=scen)  # a clear error for an array stored without its grid
        times = stack.times_s
        if time is None:
            if len(stack) != 1:
                raise ParameterError(f"result {name!r} of run {run!r} holds {len(stack)} snapshots, at "
                                     f"{times[0]:g}..{times[-1]:g} s: pass time= (seconds, or e.g. '30min') to "
                                     "pick one")
            i, t = 0, float(times[0])
        else:
            asked = parse_offset(time, "time")
            half = float(np.median(np.diff(times))) / 2 if len(times) > 1 else 0.0
            if not times[0] - half <= asked <= times[-1] + half:
                raise ParameterError(f"time={time!r} ({asked:g} s) is outside result {name!r} of run {run!r}: its "
                                     f"{len(stack)} snapshots run from {times[0]:g} to {times[-1]:g} s")
            i, t = stack.nearest(asked)
            extra["time_asked_s"] = asked
        raster = stack[i]
        values = raster.masked()
        whole = stack.data
        extra.update(time_s=t, note=f"t = {t:g} s (snapshot {i + 1} of {len(stack)}, the nearest stored; not "
                                    "interpolated)")
    style = style_for(name)
    # a stack's range over all its times: the same colour means the same value at every time
    lo, hi = _scale(style, whole, vmin, vmax)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Use `@` matmul", category=PendingDeprecationWarning)
        png, bounds, _ = render_png(raster, style, vmin=lo, vmax=hi, data=values)
    layer = _bitmap_layer(f"result:{run}:{name}", png, bounds, 0.85)
    unit = raster.unit or twin.SNAPSHOT_UNITS.get(name)
    return layer, _legend(f"{name} ({scen}/{run})", name, unit, style, lo, hi, kind=shown["kind"], **extra)


def _feature_layer(twin, shown: dict, *, vmin, vmax, max_features: int):
    import numpy as np
    import pandas as pd
    import pydeck

    from twin_core.adapters.results_export import _place, placeable
    from twin_core.errors import ParameterError
    from viewer.geo import frame_to_geojson

    scen, run, name = shown["scenario"], shown["run"], shown["name"]
    if shown["kind"] == "table" and not placeable(twin, shown["ref"]):
        raise ParameterError(f"result {name!r} of run {run!r} is a table whose rows have no place on the map (no "
                             "x/y columns and no feature id of a twin layer); load it with "
                             f"twin.load_result({scen!r}, {run!r}, {name!r})")
    obj = twin.load_result(scen, run, name)
    if len(obj) > max_features:
        raise ParameterError(f"result {name!r} has {len(obj)} rows, more than max_features={max_features}; raise "
                             "the limit or use `twin serve`")
    if shown["kind"] == "table":
        gdf = _place(twin, scen, run, name, obj)  # each row on its feature (by id) as of the run's scenario
        crs = twin.crs
    else:
        gdf, crs = obj, (obj.crs.to_string() if obj.crs is not None else twin.crs)
    gdf = gdf[gdf.geometry.notna()]
    field = next((c for c in COLOUR_FIELDS if c in gdf.columns), None)
    if field is None:
        numeric = [c for c in gdf.columns if c != gdf.geometry.name and not c.endswith("_id")
                   and pd.api.types.is_numeric_dtype(gdf[c]) and not pd.api.types.is_bool_dtype(gdf[c])]
        if not numeric:
            raise ParameterError(f"result {name!r} of run {run!r} has no numeric column to colour its features by; "
                                 f"its columns: {[c for c in gdf.columns if c != gdf.geometry.name]}")
        field = numeric[0]
    v = pd.to_numeric(gdf[field], errors="coerce").to_numpy(dtype="float64")
    style = "vc" if field in ("vc", "v_c", "voc") else "depth" if field.endswith("depth_m") else "value"
    if style == "vc" and (vmin is not None or vmax is not None):
        raise ParameterError("vmin/vmax do not apply to V/C: its scale is fixed, 0 to 1.2 and over, as on the map "
                             "page; leave them out")
    lo, hi = _scale(style, v, vmin, vmax)
    cols = _colours(v, style, lo, hi)
    if style == "depth":  # shallower than the scale's bottom: visible, not transparent as on the image
        cols[(cols[:, 3] == 0)] = NO_VALUE
    cols = cols.tolist()
    if "closed" in gdf.columns:
        closed = gdf["closed"].fillna(False).astype(bool).to_numpy()
        cols = [CLOSED if c else col for c, col in zip(closed, cols)]
    gdf = gdf.copy()
    gdf["_colour"] = cols
    geoms = set(gdf.geom_type.dropna().unique())
    covers: set = set()
    if (geoms and geoms <= {"Polygon", "MultiPolygon"} and "building_id" in gdf.columns
            and "buildings" in twin.layers() and "height_m" in twin.store.layer_info("buildings")["columns"]):
        # buildings stand as tall as they are (flat footprints would hide under the extruded buildings layer)
        h = twin.layer("buildings", scenario=None if scen == "base" else scen, columns=["building_id", "height_m"])
        h = h.drop_duplicates("building_id").set_index("building_id")["height_m"]
        gdf["height_m"] = gdf["building_id"].map(h).astype(float)
        covers = set(gdf["building_id"])
    gj = frame_to_geojson(gdf, crs)
    common = dict(id=f"result:{run}:{name}", data=gj, pickable=True, auto_highlight=True,
                  get_fill_color="properties._colour", get_line_color="properties._colour")
    if covers:
        layer = pydeck.Layer("GeoJsonLayer", extruded=True, get_elevation="properties.height_m", **common)
    elif geoms and geoms <= {"LineString", "MultiLineString"}:
        layer = pydeck.Layer("GeoJsonLayer", line_width_min_pixels=3, get_line_width=4, **common)
    elif geoms and geoms <= {"Point", "MultiPoint"}:
        layer = pydeck.Layer("GeoJsonLayer", point_type="circle", get_point_radius=6, point_radius_min_pixels=3,
                             **common)
    else:
        layer = pydeck.Layer("GeoJsonLayer", line_width_min_pixels=1, **common)
    unit = {"vc": None, "max_depth_m": "m", "time_s": "s", "dry_time_s": "s"}.get(field)
    extra = {"kind": shown["kind"], "features": int(len(gdf))}
    if style == "vc":
        extra["note"] = "grey: no value; dark grey: closed"
    elif not np.isfinite(v).all():
        extra["note"] = "grey: no value"
    return (layer, _legend(f"{name} ({scen}/{run})", "V/C" if style == "vc" else field, unit, style, lo, hi, **extra),
            covers)

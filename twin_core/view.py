"""``view(twin)``: the twin as a pydeck ``Deck`` that renders offline in Jupyter.

The page pydeck writes loads deck.gl from a CDN (and basemap styles from the
web); the :class:`OfflineDeck` returned here inlines the deck.gl bundle that
ships inside the pydeck wheel (``pydeck/nbextension/static/index.js``) and
references nothing outside the notebook, so it renders on machines without
internet. No basemap: the DEM hillshade is the ground.

For whole cities use the map server (``twin serve``): it streams vector tiles
(tens of bytes per building) instead of inline GeoJSON (hundreds).

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

__all__ = ["view", "OfflineDeck", "pydeck_bundle_path"]

COLOUR_BY = ("height_m", "use", None)
_USE = {"residential": [241, 196, 120], "commercial": [235, 120, 110], "office": [120, 170, 235],
        "industrial": [170, 150, 200], "public": [120, 200, 160], "school": [250, 230, 110],
        "hospital": [255, 140, 180], "mixed": [200, 200, 200]}


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
</head><body><div id="deck-container"></div>
<script>
window.__deckReady = false;
const container = document.getElementById('deck-container');
const jsonInput = {json_input};
window.__deck = createDeck({{container, jsonInput, tooltip: {tooltip}, customLibraries: null, configuration: null}});
window.__deckReady = true;
</script></body></html>
"""


def _offline_html(deck_json: str, tooltip, title: str) -> str:
    with open(pydeck_bundle_path(), encoding="utf-8") as fh:
        bundle = fh.read()
    safe_json = deck_json.replace("</", "<\\/")
    tip = "true" if tooltip is True else ("false" if tooltip is False else json.dumps(tooltip))
    return _TEMPLATE.format(title=html_mod.escape(title), bundle=bundle, json_input=safe_json, tooltip=tip)


def _deck_class():
    import pydeck

    class OfflineDeck(pydeck.Deck):
        """A pydeck Deck whose HTML inlines the local deck.gl bundle (no CDN, no basemap)."""

        def to_html(self, filename=None, open_browser=False, notebook_display=None, iframe_width="100%",
                    iframe_height=520, as_string=False, offline=True, **kwargs):
            page = _offline_html(self.to_json(), self._tooltip, getattr(self, "_twin_title", "RongTwin"))
            if filename:
                with open(filename, "w", encoding="utf-8") as fh:
                    fh.write(page)
                return os.path.abspath(filename)
            if as_string or not notebook_display:
                return page
            from IPython.display import HTML

            return HTML(_iframe(page, iframe_width, iframe_height))

        def _repr_html_(self):
            return _iframe(_offline_html(self.to_json(), self._tooltip, getattr(self, "_twin_title", "RongTwin")),
                           "100%", 520)

        def show(self):
            return self.to_html(notebook_display=True)

    return OfflineDeck


def _iframe(page: str, width, height) -> str:
    w = f'"{width}"' if isinstance(width, str) else width
    return f'<iframe width={w} height={height} frameborder="0" srcdoc="{html_mod.escape(page)}"></iframe>'


def OfflineDeck(*args, **kwargs):  # noqa: N802 - a factory that reads like the class
    """Build an offline deck (see :func:`view`)."""
    return _deck_class()(*args, **kwargs)


def _hillshade_layer(twin, scenario):
    import io

    import pydeck
    from PIL import Image

    from viewer.imaging import render_png

    if "dem" not in twin.rasters():
        return None
    dem = twin.raster("dem", scenario=scenario)
    with warnings.catch_warnings():
        # rasterio's calculate_default_transform composes affines with the `*` that affine 2.4 deprecates: one
        # PendingDeprecationWarning per twin.view() in a notebook, none of it ours to act on
        warnings.filterwarnings("ignore", message="Use `@` matmul", category=PendingDeprecationWarning)
        png, bounds, _ = render_png(dem, "hillshade")
    # keep the inline image small
    img = Image.open(io.BytesIO(png))
    if max(img.size) > 800:
        img.thumbnail((800, 800))
        buf = io.BytesIO()
        img.save(buf, format="PNG")
        png = buf.getvalue()
    url = "data:image/png;base64," + base64.b64encode(png).decode()
    # a plain string would be read as a deck.gl JSON expression ("@@="); types.String keeps it literal
    return pydeck.Layer("BitmapLayer", id="hillshade", image=pydeck.types.String(url), bounds=bounds, opacity=1.0)


def view(twin, layers: str | Sequence[str] = ("buildings",), *, scenario: str | None = None,
         colour_by: str | None = "height_m", hillshade: bool = True, max_features: int = 50_000, pitch: float = 45.0):
    """The twin (as of ``scenario``) as an offline pydeck Deck for notebooks.

    Parameters
    ----------
    twin : twin_core.Twin
    layers : a vector layer name, or names, to show (buildings are extruded by ``height_m``).
    scenario : show the layers as of this scenario (default: the base).
    colour_by : ``"height_m"``, ``"use"`` or None (buildings only).
    hillshade : put the DEM hillshade under everything (when the twin has a ``dem``).
    max_features : refuse layers larger than this (inline GeoJSON costs ~435 bytes a building;
        use ``twin serve`` for whole cities).
    """
    import pydeck

    from twin_core.errors import FieldError, LayerNotFoundError, ParameterError

    if isinstance(layers, str):  # layers="buildings" means that one layer, not its letters
        layers = (layers,)
    if colour_by not in COLOUR_BY:
        raise ParameterError(f"colour_by must be one of {list(COLOUR_BY)}, got {colour_by!r}")
    have = twin.layers()
    missing = [n for n in layers if n not in have]
    if missing:
        raise LayerNotFoundError(f"no layer(s) {missing} in the twin; layers: {have}")
    from viewer.geo import frame_to_geojson, to_wgs84
    from viewer.scene import camera_for

    deck_layers = []
    if hillshade:
        hs = _hillshade_layer(twin, scenario)
        if hs is not None:
            deck_layers.append(hs)
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
    ext = twin.extent
    cam = camera_for(to_wgs84(ext, twin.crs)) if ext else {"longitude": 104.06, "latitude": 30.66, "zoom": 12}
    vs = pydeck.ViewState(longitude=cam["longitude"], latitude=cam["latitude"], zoom=max(cam["zoom"] - 0.5, 1),
                          pitch=pitch, bearing=0)
    deck = OfflineDeck(layers=deck_layers, initial_view_state=vs, map_provider=None, map_style=None,
                       tooltip={"text": "{building_id} {height_m} m {use}"} if "buildings" in layers else True)
    deck._twin_title = f"RongTwin: {twin.name}"
    return deck

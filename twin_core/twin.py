"""The :class:`Twin` facade: what researchers use in notebooks.

Examples
--------
>>> import tempfile, os
>>> from twin_core import Twin
>>> twin = Twin.create(os.path.join(tempfile.mkdtemp(), "demo.gpkg"), name="demo")
>>> twin.crs
'EPSG:4544'
>>> s = twin.scenarios.create("levee", "a new levee on the river")
>>> twin.scenarios.names()
['levee']
>>> twin.close()
"""

from __future__ import annotations

import inspect
import math
import os
from typing import Any

from cim.crs import DEFAULT_CRS, check_projected, looks_like_lonlat
from cim.raster import Raster, Window
from cim.results import engine_of, list_results, load_result, new_run_id, save_result
from cim.scenario import BASE, Scenario, Scenarios
from cim.store import Store, is_dsn, open_store
from cim.store.base import FORMAT_KEY
from pyproj import CRS

from twin_core.errors import CRSError, LayerNotFoundError, RasterError, StoreConnectionError, StoreError

__all__ = ["Twin"]

#: the prefixes of the store's bookkeeping keys in ``twin_meta``, which :attr:`Twin.meta` leaves out: the results
#: index, the scenarios, the viewer's tokens (``token:<id>``) and its ``auth:tokens_issued`` mark
_BOOKKEEPING = ("result:", "scenario:", "token:", "auth:")


def _check_kwargs(what: str, kwargs: dict, fns, skip=("twin", "progress")) -> None:
    """A keyword no engine function takes fails with what they do take (a bare TypeError named an internal
    function: ``prepare_flood() got an unexpected keyword argument 'return_period'``)."""
    names: list[str] = []
    for fn in fns:
        for fn_ in (fn, *getattr(fn, "forwards_to", ())):
            for p in inspect.signature(fn_).parameters.values():
                if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name not in skip and p.name not in names:
                    names.append(p.name)
    bad = [k for k in kwargs if k not in names]
    if bad:
        import difflib

        near = {k: difflib.get_close_matches(k, names, n=1) for k in bad}
        hint = "; ".join(f"{k!r}: did you mean {m[0]!r}?" for k, m in near.items() if m)
        raise TypeError(f"{what} got unexpected keyword argument(s) {bad}" + (f" ({hint})" if hint else "")
                        + f"; it takes {names}")


def _open_existing(target, schema: str | None) -> Store:
    """The store of an existing twin at ``target`` (a path, a DSN or an open Store), or a clear error."""
    if isinstance(target, Store):
        return target
    if not isinstance(target, (str, os.PathLike)):
        raise TypeError(f"a twin is opened from a .gpkg path, a postgresql:// DSN or a cim.store.Store, got "
                        f"{type(target).__name__} {target!r}"[:300])
    store = open_store(target, schema=schema)
    if store.crs is None:
        uri = store.uri
        store.close()
        where = ("the database and schema (postgresql://host/db?schema=name)" if is_dsn(target)
                 else "the path")
        raise StoreConnectionError(
            f"{uri} holds no twin (no CRS recorded): check {where}, or build one with `twin build` "
            "or Twin.create()")
    return store



def _refuse_foreign_crs(target, crs: CRS) -> None:
    """Refuse to make a twin of ``crs`` in an existing GeoPackage written by other tools (no twin tables)
    whose layers or rasters are in another CRS, or in none: the twin would take them over and read their
    coordinates as ``crs`` without reprojecting them (a UTM layer moved 1.4 km). Layers already in ``crs``
    are taken over as they are. (A PostGIS schema's plain tables are no layers of the twin: it lists only
    what it wrote itself.)"""
    import sqlite3

    if isinstance(target, Store) or not isinstance(target, (str, os.PathLike)) or is_dsn(target):
        return
    path = os.fspath(target)
    if not path.lower().endswith(".gpkg") or not os.path.isfile(path):
        return
    try:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            if "twin_meta" in tables or not {"gpkg_contents", "gpkg_spatial_ref_sys"} <= tables:
                return  # a twin (Twin.create checks its CRS) or no GeoPackage (the store says so)
            rows = con.execute(
                "SELECT c.table_name, c.data_type, c.srs_id, s.organization, s.organization_coordsys_id, "
                "s.definition FROM gpkg_contents c LEFT JOIN gpkg_spatial_ref_sys s ON s.srs_id = c.srs_id "
                "WHERE c.data_type != 'attributes' ORDER BY c.table_name").fetchall()
        finally:
            con.close()
    except sqlite3.Error:
        return  # not readable as SQLite: the store's own checks say why
    foreign = []
    for name, kind, srs_id, org, code, definition in rows:
        if str(name).startswith("twin_"):
            continue
        what = "raster" if kind != "features" else "layer"
        if srs_id is None or srs_id <= 0:
            foreign.append(f"{what} {name!r} (no CRS)")
            continue
        try:
            theirs = (CRS.from_authority(org, int(code)) if org and code and str(org).upper() == "EPSG"
                      else CRS.from_user_input(definition))
        except Exception:  # noqa: BLE001 - a CRS pyproj cannot read is not the twin's either
            foreign.append(f"{what} {name!r} (srs_id {srs_id}, a CRS that cannot be read)")
            continue
        if not theirs.equals(crs, ignore_axis_order=True):
            foreign.append(f"{what} {name!r} ({theirs.to_string()})")
    if not foreign:
        return
    first = next(f.split("'")[1] for f in foreign)
    raise CRSError(
        f"{path} is a GeoPackage that holds no twin, and it holds {', '.join(foreign)} in another CRS than "
        f"the twin's {crs.to_string()}: a twin made here would read their coordinates as {crs.to_string()} "
        "without reprojecting them. Create the twin in a new file and import them into it, reprojected: "
        f"Twin.create('new.gpkg') then `twin import new.gpkg {path} --layer {first} --class FEATURE_CLASS` "
        "(cim.io.vector.import_vector in Python); or create the twin here with their CRS (crs=...) if it is a "
        "projected CRS in metres and all of them share it")

#: keywords Twin.layer passes on to the store's read (and the scenario's edits): the store's own
_LAYER_KWARGS = tuple(p.name for p in inspect.signature(Store.read_layer).parameters.values()
                      if p.kind == p.KEYWORD_ONLY)


class Twin:
    """A city twin: one store (GeoPackage file or PostGIS), its CRS, scenarios and results.

    Open one with ``Twin("city.gpkg")`` / :meth:`Twin.open` (an existing twin: a ``.gpkg`` path or a
    ``postgresql://`` DSN) or :meth:`Twin.create` (a new one); ``with Twin(...) as twin:`` closes it at the
    end. Read with :meth:`layer`, :meth:`raster`; edit with :attr:`scenarios`; run :meth:`flood`,
    :meth:`traffic`, :meth:`crowd`, :meth:`sweep`, :meth:`sunlight`, :meth:`viewshed`; find stored
    results with :meth:`runs`, :meth:`results` and :meth:`load_result`.

    Examples
    --------
    >>> import tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "c.gpkg")
    >>> Twin.create(path, name="demo").close()
    >>> with Twin(path) as twin:          # a path opens the twin, as Twin.open(path) does
    ...     twin.name
    'demo'
    """

    def __init__(self, store: "Store | str | os.PathLike", *, schema: str | None = None) -> None:
        """``store``: an open :class:`cim.store.Store`, or the path / DSN of an existing twin (opened with the
        checks of :meth:`open`; ``schema`` is the PostGIS schema)."""
        store = _open_existing(store, schema)
        self.store = store
        self.scenarios = Scenarios(store)
        # set_param from Python refuses what the engines would not take, as the CLI and the map do (an unknown
        # link id was recorded and failed every later traffic run of the scenario)
        self.scenarios.param_check = _check_scenario_param

    # -- opening ---------------------------------------------------------
    @classmethod
    def open(cls, target: "str | os.PathLike | Store", *, schema: str | None = None) -> "Twin":
        """Open an existing twin from a ``.gpkg`` path or a ``postgresql://`` DSN (``Twin(target)`` is the same).

        Examples
        --------
        >>> Twin.open("/nonexistent/city.gpkg")                # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        twin_core.errors.StoreConnectionError: GeoPackage ...city.gpkg' does not exist; ... `twin build ...
        """
        return cls(_open_existing(target, schema))

    @classmethod
    def create(cls, target: "str | os.PathLike", *, crs: str = DEFAULT_CRS, name: str | None = None,
               timezone: str | None = None, schema: str | None = None) -> "Twin":
        """Create a new twin (file or PostGIS schema) with a projected CRS in metres.

        ``timezone`` (an IANA name) defaults to "Asia/Shanghai" for a new twin; on an existing twin of the
        same CRS, which is then opened, it keeps its own name and time zone unless they are given.
        """
        c = check_projected(crs)
        _refuse_foreign_crs(target, c)
        store = open_store(target, create=True, crs=c.to_string(), schema=schema)
        meta = store.get_meta()
        if meta.get("crs") and CRS.from_user_input(meta["crs"]) != CRS.from_user_input(c):
            store.close()
            raise CRSError(f"{store.uri} already holds a twin in {meta['crs']}, not {c.to_string()}: its data "
                           "would be read in the wrong CRS. Open it with Twin.open(), or create the new twin "
                           "at another path or schema")
        store.set_meta({
            "name": name or meta.get("name") or os.path.splitext(os.path.basename(str(target)))[0],
            "timezone": timezone or meta.get("timezone") or "Asia/Shanghai",
            "crs": c.to_string(),
        })
        return cls(store)

    def close(self) -> None:
        """Close the store (again is fine); the twin cannot be read afterwards."""
        self.store.close()

    def __enter__(self) -> "Twin":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        try:
            return f"<Twin {self.name!r} {self.crs} at {self.store.uri}>"
        except StoreError:  # closed: a notebook still shows it
            return f"<Twin (closed) at {getattr(self.store, 'uri', '?')}>"

    def _repr_html_(self) -> str:
        """What a notebook shows of ``twin``: its name, CRS and store, the layers with their feature counts, the
        rasters, the scenarios and how many runs are stored (a notebook showed only the one-line repr)."""
        import html

        try:
            s = self.summary()
        except StoreError:
            return f"<div>{html.escape(repr(self))}</div>"
        esc = html.escape

        def row(k, v):
            return f"<tr><th style='text-align:left'>{esc(k)}</th><td style='text-align:left'>{esc(v)}</td></tr>"

        ext = s["extent"]
        rows = [row("CRS", f"{s['crs']} (metres)"), row("time zone", s["timezone"]), row("store", s["store"]),
                row("extent", ", ".join(f"{v:.0f}" for v in ext) if ext else "(empty)"),
                row("layers", ", ".join(f"{n} ({c:,})" for n, c in s["layers"].items()) or "(none)"),
                row("rasters", ", ".join(f"{n} ({h} x {w})" for n, (h, w) in s["rasters"].items()) or "(none)"),
                row("scenarios", ", ".join(["base"] + s["scenarios"])),
                row("results", f"{s['runs']} runs, {s['results']} results")]
        return (f"<div><b>Twin</b> <code>{esc(s['name'])}</code><table>{''.join(rows)}</table>"
                "<small>twin.layer(name), twin.raster(name), twin.runs(), twin.load_result(scenario, run, name)"
                "</small></div>")

    # -- metadata --------------------------------------------------------
    @property
    def meta(self) -> dict[str, Any]:
        """The twin's own metadata: its ``name``, ``crs``, ``timezone``, ``created``, ``extent`` when recorded
        and keys set with ``twin.store.set_meta``. The store's bookkeeping is left out: the results index
        (:meth:`results`), the scenarios (:attr:`scenarios`), the viewer's tokens and the store format version
        (``format_version``, checked when the store opens); ``twin.store.get_meta()`` has every key."""
        return {k: v for k, v in self.store.get_meta().items()
                if k != FORMAT_KEY and not k.startswith(_BOOKKEEPING)}

    @property
    def name(self) -> str:
        return self.store.get_meta().get("name", "")

    @property
    def crs(self) -> str:
        return self.store.crs

    @property
    def timezone(self) -> str:
        return self.store.get_meta().get("timezone", "Asia/Shanghai")

    @property
    def extent(self) -> list[float] | None:
        """(xmin, ymin, xmax, ymax) in the twin CRS: the metadata's, else the union of the layers' and the
        rasters' bounds (result rasters left out; a twin holding only a DEM has the DEM's extent); None for a
        twin that holds nothing. ``twin info`` shows this."""
        ext = self.store.get_meta().get("extent")
        if ext:
            return ext
        bounds = [self.store.layer_info(n)["bounds"] for n in self.store.list_layers()]
        bounds += [self.store.raster_info(n)["bounds"] for n in self.rasters()]
        bounds = [list(b) for b in bounds if b]
        if not bounds:
            return None
        return [float(min(b[0] for b in bounds)), float(min(b[1] for b in bounds)), float(max(b[2] for b in bounds)),
                float(max(b[3] for b in bounds))]

    # -- data ----------------------------------------------------------------
    def layers(self, *, results: bool = False) -> list[str]:
        """The city's vector layers (``buildings``, ``road_links`` ...). The layers that hold stored results
        (``res_<hash>``, read with :meth:`load_result`) are left out unless ``results=True``."""
        names = self.store.list_layers()
        return names if results else [n for n in names if not n.startswith("res_")]

    def rasters(self, *, results: bool = False) -> list[str]:
        """The city's rasters (``dem``, ``manning`` ...); result rasters only with ``results=True``."""
        names = self.store.list_rasters()
        return names if results else [n for n in names if not n.startswith("res_")]

    def scenario(self, name: str | None = None) -> Scenario:
        """The scenario ``name`` (None or "base": the city itself); a mistyped name fails naming the close one."""
        return self.scenarios.get(name or BASE)

    def _not_found(self, kind: str, name: str, have: list[str]) -> LayerNotFoundError:
        from cim.scenario import did_you_mean

        return LayerNotFoundError(f"no {kind} {name!r} in {self.store.uri}; {kind}s here: {have}"
                                  + did_you_mean(name, have)
                                  + "; results (flood depths, link flows ...) are read with twin.load_result() "
                                    "(CLI: twin export STORE NAME OUT --run RUN; twin runs STORE lists the runs)")

    def layer(self, name: str, scenario: str | None = None, **kwargs):
        """A layer as a GeoDataFrame in the twin's CRS, as of ``scenario`` (default: the base).

        Parameters
        ----------
        name : a layer of :meth:`layers` (``"buildings"``, ``"road_links"``, ``"pois"`` ...)
        scenario : a scenario name (None: the base)
        bbox : (xmin, ymin, xmax, ymax) in the twin's CRS (metres, not longitude/latitude)
        where : ``{"use": "school"}``, ``{"height_m": (">", 50)}`` ...
        columns : the columns to keep; limit, offset : paging

        Examples
        --------
        >>> twin.layer("pois", where={"kind": "school"})                        # doctest: +SKIP
        """
        bad = [k for k in kwargs if k not in _LAYER_KWARGS]
        if bad:
            import difflib

            hint = "".join(f"; {k!r}: did you mean {m[0]!r}?" for k in bad
                           for m in [difflib.get_close_matches(k, _LAYER_KWARGS, n=1)] if m)
            raise TypeError(f"Twin.layer() got unexpected keyword argument(s) {bad}{hint}; it takes scenario= and "
                            f"{list(_LAYER_KWARGS)}")
        scen = self.scenario(scenario)
        try:
            gdf = scen.layer(name, **kwargs)
        except LayerNotFoundError:
            if self.store.has_layer(name):
                raise
            raise self._not_found("layer", name, self.layers()) from None
        if kwargs.get("bbox") is not None and not len(gdf):
            self._warn_if_outside("bbox", kwargs["bbox"])
        if kwargs.get("where") and not len(gdf):
            self._warn_if_no_such_value(scen, name, kwargs["where"])
        return gdf

    def _warn_if_no_such_value(self, scen, name: str, where) -> None:
        """An empty read whose ``where`` asks a text field for a value the layer does not hold (``"schol"``)."""
        from cim.scenario import did_you_mean
        from twin_core.errors import TwinWarning, twin_warn

        if not isinstance(where, dict):
            return
        for field, value in where.items():
            if not isinstance(value, str):
                continue
            try:
                have = sorted({str(v) for v in scen.layer(name, columns=[field])[field].dropna()})
            except Exception:  # noqa: BLE001  the hint is a courtesy: never fail the read over it
                return
            if value not in have:
                shown = have if len(have) <= 20 else have[:20] + ["..."]
                twin_warn(f"no feature of {name!r} has {field} = {value!r}, so nothing was found; its values are "
                          f"{shown}" + did_you_mean(value, have), TwinWarning)
                return

    def _warn_if_outside(self, what: str, bounds) -> None:
        """An empty read whose box misses the whole twin: most likely longitude/latitude for metres."""
        from twin_core.errors import TwinWarning, twin_warn

        try:
            xmin, ymin, xmax, ymax = (float(v) for v in bounds)
            ext = self.extent
        except (TypeError, ValueError, StoreError):
            return
        if ext is None or not (xmax < ext[0] or xmin > ext[2] or ymax < ext[1] or ymin > ext[3]):
            return
        lonlat = looks_like_lonlat(bounds)
        twin_warn(f"{what} {tuple(bounds)} lies outside the twin's extent {tuple(ext)}, so nothing was found; "
                      f"it is in the twin's CRS {self.crs} (metres)"
                      + (", and it looks like longitude/latitude: transform it first, e.g. "
                         f"pyproj.Transformer.from_crs('EPSG:4326', {self.crs!r}, always_xy=True)"
                         f".transform_bounds(*{what})" if lonlat else ""),
                      TwinWarning, stacklevel=3)

    def raster(self, name: str, scenario: str | None = None, *, window: Window | None = None, bounds=None) -> Raster:
        """A raster (:class:`cim.raster.Raster`: ``.data``, ``.transform``, ``.crs``, ``.masked()`` with NaN
        for nodata) as of ``scenario`` (default: the base); ``bounds`` or ``window`` cut a part of it."""
        scen = self.scenario(scenario)
        try:
            return scen.raster(name, window=window, bounds=bounds)
        except LayerNotFoundError:
            if self.store.has_raster(name):
                raise
            raise self._not_found("raster", name, self.rasters()) from None
        except RasterError as exc:
            if bounds is None or not looks_like_lonlat(bounds):
                raise
            raise RasterError(f"{exc}; bounds are in the twin's CRS {self.crs} (metres), and these look like "
                              f"longitude/latitude: transform them first, e.g. pyproj.Transformer.from_crs("
                              f"'EPSG:4326', {self.crs!r}, always_xy=True).transform_bounds(*bounds)") from None

    # -- results ---------------------------------------------------------------
    def save_result(self, scenario: str, run: str, name: str, obj: Any, *, meta: dict | None = None) -> None:
        """Store ``obj`` (a GeoDataFrame, DataFrame, Raster, ndarray or JSON-able dict) as result ``name`` of
        ``run`` under ``scenario`` (None: the base), with ``meta`` (a dict) beside it."""
        save_result(self.store, scenario or BASE, run, name, obj, meta=meta)

    def load_result(self, scenario: str, run: str, name: str):
        """Result ``name`` of ``run`` under ``scenario`` (None: the base), in the type it was saved as.

        A run that is not under ``scenario`` is named where it is (a run of the
        scenario ``levee`` looked up under the base said only "results there: []").
        """
        scen = scenario or BASE
        try:
            return load_result(self.store, scen, run, name)
        except LayerNotFoundError:
            idx = self.results()
            if ((idx["scenario"] == scen) & (idx["run"] == run)).any():
                raise  # the run is there, the name is not: that error lists the run's results
            elsewhere = sorted(set(idx.loc[idx["run"] == run, "scenario"]))
            if elsewhere:
                hint = (f"run {run!r} is under scenario {elsewhere if len(elsewhere) > 1 else elsewhere[0]!r}: "
                        f"twin.load_result({elsewhere[0]!r}, {run!r}, {name!r})")
            else:
                runs = sorted(set(idx.loc[idx["scenario"] == scen, "run"]))
                shown = runs if len(runs) <= 20 else runs[:20] + [f"... {len(runs) - 20} more"]
                hint = (f"runs under scenario {scen!r}: {shown}" if runs else f"scenario {scen!r} holds no results")
                hint += "; twin.results() lists every stored result"
            raise LayerNotFoundError(f"no run {run!r} under scenario {scen!r}, so no result {name!r}; {hint}") from None

    #: units of the stacks :meth:`snapshots` knows by name
    SNAPSHOT_UNITS = {"depth_snapshots": "m", "density": "persons/m2"}

    def snapshots(self, run: str, name: str | None = None, *, scenario: str | None = None):
        """A run's stack of grids over time with its times and grid, in one call: a :class:`cim.raster.RasterStack`.

        ``name``: ``"depth_snapshots"`` (a flood's depth, m) or ``"density"`` (a crowd's, persons/m2); by
        default whichever the run has. ``scenario`` is needed only when the run id is under several.
        ``.data`` is (times, rows, cols) with rows from the north (an older crowd run's, stored from the south, are
        turned), ``.times_s`` seconds from the scenario start, ``.transform``/``.crs`` the grid;
        ``.to_xarray()`` gives a ``(time, y, x)`` DataArray (needs xarray), ``stack[i]`` one
        :class:`cim.Raster`, ``stack.nearest(t)`` the index and time of the snapshot closest to ``t`` s.

        Examples
        --------
        >>> depth = twin.snapshots(flood.run)                              # doctest: +SKIP
        >>> depth.to_xarray().sel(time=1800, method="nearest").plot()      # doctest: +SKIP
        """
        from twin_core.adapters.results_export import find_result, read_stack

        def stack(names):  # the run's stack, when only the run is named
            have = [n for n in self.SNAPSHOT_UNITS if n in names]
            if not have:
                raise LayerNotFoundError(f"run {run!r} has no stack of snapshots (a flood's depth_snapshots or a "
                                         f"crowd's density); its results: {', '.join(names)}")
            return have[0]

        hit = find_result(self, run, name, scenario, default=stack)
        return read_stack(self, hit, unit=self.SNAPSHOT_UNITS.get(hit.name))

    def results(self, scenario: str | None = None, run: str | None = None, name: str | None = None):
        """The stored results: a DataFrame with one row per result (``scenario``, ``run``, ``name``, ``kind``
        ``ref``, ``created``, ``meta``: what it was made with), optionally only those of ``scenario``,
        ``run`` and/or ``name``. :meth:`runs` gives one row per run instead.

        A filter that matches nothing because of a typo (a scenario or run id that is nowhere) warns, naming
        the close one.
        """
        df = list_results(self.store, scenario=scenario, run=run, name=name)
        if not len(df) and (scenario is not None or run is not None or name is not None):
            self._warn_empty_filter(scenario, run, name)
        return df

    def _warn_empty_filter(self, scenario, run, name, *, meta: dict | None = None) -> None:
        from cim.scenario import did_you_mean, normalise_scenario_name
        from twin_core.errors import TwinWarning, twin_warn

        idx = list_results(self.store, meta=meta)
        why = []
        if scenario is not None:
            scen = normalise_scenario_name(scenario)
            known = [BASE] + self.scenarios.names()
            if scen not in known and scen not in set(idx["scenario"]):
                why.append(f"there is no scenario {scen!r}{did_you_mean(scen, known)}")
        if run is not None and run not in set(idx["run"]):
            why.append(f"no run is called {run!r}{did_you_mean(run, sorted(set(idx['run'])))}")
        if name is not None and name not in set(idx["name"]):
            why.append(f"no result is called {name!r}{did_you_mean(name, sorted(set(idx['name'])))}")
        if why:
            twin_warn("no results match: " + "; ".join(why) + "; twin.runs() lists the stored runs",
                          TwinWarning, stacklevel=3)

    def runs(self, scenario: str | None = None):
        """One row per stored run: ``scenario``, ``run``, ``engine`` (flood, traffic, crowd, sweep, sunlight,
        viewshed; empty for results saved by hand), ``created`` (when its first result was saved: a pandas
        UTC datetime, ``runs["created"].dt.tz_convert(twin.timezone)`` for local time), ``results`` (the
        names to give :meth:`load_result`) and ``about`` (what the run was, from its summary: a flood's storm,
        a traffic run's mode and demand, a crowd's area or IFC storey, agents and model ...; see
        :func:`describe_run`), ``stale`` (bool) and ``stale_why`` (None when current): a run made before its
        scenario's latest edit, before a base layer or raster it read was replaced, or on a flood run
        (``flooded_by``) that is stale itself, was re-run after it or deleted, is not the twin's answer as it is
        now (:func:`cim.results.stale_results`, the map's rules), oldest first."""
        import pandas as pd

        from cim.results import stale_runs

        meta = self.store.get_meta()  # the results index, read once for the rows, their lines and the stale chain
        df = list_results(self.store, scenario=scenario, meta=meta)
        if not len(df) and scenario is not None:
            self._warn_empty_filter(scenario, None, None, meta=meta)
        # as times, not text: the text sorted right only while every result wrote the same ISO form
        df["created"] = pd.to_datetime(df["created"], utc=True, format="ISO8601", errors="coerce")
        rows = []
        about = describe_runs(self.store, df, meta=meta)
        stale = stale_runs(self.store, df, scenarios=self.scenarios, meta=meta)
        for (scen, run), g in df.groupby(["scenario", "run"], sort=False):
            engine = next((e for e in map(engine_of, g["meta"]) if e), "")
            why = stale.get((scen, run))
            rows.append({"scenario": scen, "run": run, "engine": engine, "created": g["created"].min(),
                         "results": sorted(g["name"]), "about": about.get((scen, run), ""),
                         "stale": why is not None, "stale_why": why})
        out = pd.DataFrame(rows, columns=["scenario", "run", "engine", "created", "results", "about", "stale",
                                          "stale_why"])
        out["stale"] = out["stale"].astype(bool)  # bool when empty too
        out["stale_why"] = out["stale_why"].astype(object).where(out["stale_why"].notna(), None)  # None, not NaN
        out["created"] = pd.to_datetime(out["created"], utc=True)  # datetime64[ns, UTC] when empty too
        return out.sort_values(["created", "scenario", "run"]).reset_index(drop=True)

    def delete_run(self, run: str, scenario: str | None = None) -> int:
        """Delete stored run ``run`` whole (every result under it, in one transaction) and return how many
        results went; its id is free again for any engine. ``scenario`` is needed only when the run id is
        under several. An unknown run is refused, naming the close id (CLI: ``twin runs TARGET RUN --delete``).
        Stored runs that used it (a traffic run ``flooded_by`` it, a comparison of it) are named in a warning:
        they now refer to results that are gone (:func:`cim.results.delete_run`).

        Examples
        --------
        >>> twin.delete_run("storm50")                                      # doctest: +SKIP
        11
        """
        from cim.results import delete_run
        from twin_core.adapters.results_export import find_run

        scen = find_run(self, run, scenario)  # an unknown run: the close id; one under several: name one
        return len(delete_run(self.store, scen, run))

    def export_result(self, run: str, name: str, path, *, scenario: str | None = None, crs=None):
        """Write result ``name`` of ``run`` to ``path`` for a GIS or a spreadsheet; the extension picks the
        format: a raster to GeoTIFF, a table to CSV or Parquet (or, when its rows name features by id, e.g.
        ``exposure_buildings``, to a GeoPackage/GeoJSON/... with their geometry), a flood's
        ``depth_snapshots`` or a crowd's ``density`` to a multi-band GeoTIFF, a summary to JSON. ``scenario``
        is needed only when the run id is under several. Returns the path written; see
        :mod:`twin_core.adapters.results_export`."""
        from twin_core.adapters.results_export import export_result

        return export_result(self, run, name, path, scenario=scenario, crs=crs)

    @staticmethod
    def new_run_id(prefix: str = "run") -> str:
        """A new, sortable run id such as ``flood-20261124T163000-1a2b``."""
        return new_run_id(prefix)

    # -- engines and analyses (thin: each delegates to its adapter) --------------
    def flood(self, scenario: str | None = None, run: str | None = None, **kwargs):
        """Run a design storm (or a given hyetograph) on a scenario; results saved under ``scenario``/``run``.

        Parameters
        ----------
        scenario : a scenario name (None: the base)
        run : the run id (default: a new ``flood-<time>-<hash>``): letters, digits, ``_``, ``-``, ``.``
        storm : return period of the design storm, ``"50y"`` or 50 (years, >= 1)
        duration : storm duration, ``"1h"``, ``"90min"``, seconds (a bare number is seconds) or a
            ``datetime.timedelta`` / ``pandas.Timedelta`` / ``numpy.timedelta64``
        until : how long to simulate (default: ``duration``)
        threshold : depth in metres from which a feature counts as flooded (0.15)
        drainage_mm_h, infiltration_mm_h : losses in mm/h (sewers; soil): a number, a per-cell grid of the DEM's
            shape, or the name of a raster of the twin on the DEM's grid
        initial_water : True (default): the ``water`` layer's rivers and lakes start at their normal level;
            False: dry. Flooding (flooded area, exposure) is judged over land, outside the water polygons
        buildings : "block" (default), "raise" or "none";  roof_runoff : "adjacent" (default) or "none"
        inflows : point inflows, e.g. the river fed from upstream (default none): a list of dicts
            ``{"x": X, "y": Y, "q": Q}`` (a constant Q m3/s) or ``{"x", "y", "times", "flows"}`` (a hydrograph:
            seconds from the start of the run, m3/s; linear between the samples, the first and last flows held
            outside them) or ``{"x", "y", "hydrograph": "file.csv"}`` (columns ``time_s``, ``time_min`` or
            ``time_h``, and ``flow_m3_s``), each with an optional ``"name"``; or texts ``"[NAME@]X,Y=Q"`` /
            ``"[NAME@]X,Y=file.csv"`` (as ``twin flood --inflow``), or :class:`simulation.flood.Inflow` objects.
            X, Y in the twin's CRS, metres, on an open cell of the DEM. The summary's ``inflow_m3`` is what
            they brought (in the mass balance) and ``inflows`` lists them; see
            :func:`twin_core.adapters.flood.parse_inflows`
        rain : a :class:`simulation.flood.Hyetograph` (or ``RainSeries``) instead of the design storm
        rain_from_sensors, rain_until, rain_spatial, rain_gaps : the rain the twin's rain gauges measured over a
            window (``"2h"``) up to ``rain_until`` instead of a design storm (``rain_spatial="nearest"``: each
            cell its nearest gauge's rain); see :func:`twin_core.adapters.flood.rain_from_sensors`
        snapshot_interval : time between the saved depth snapshots ("10min"; None: none saved)
        save : store the results (True);  progress : callable(done_s, total_s)

        Every keyword is in the signature (``help(twin.flood)``); see
        :func:`twin_core.adapters.flood.run_flood` and :func:`~twin_core.adapters.flood.prepare_flood`.

        Returns
        -------
        FloodRun: ``.scenario``, ``.run``, ``.summary`` (dict: ``max_depth_m``, ``flooded_area_m2``, the
        volumes ...), ``.result`` (arrays ``max_depth``, ``snapshots`` ...; tables ``gauges``,
        ``mass_balance``) and ``.exposure`` (flooded buildings, road links, POIs)

        Examples
        --------
        >>> run = twin.flood("levee", storm="50y", duration="1h", drainage_mm_h=20)      # doctest: +SKIP
        >>> twin.load_result("levee", run.run, "max_depth")                              # doctest: +SKIP
        >>> fed = twin.flood(duration="1h", inflows=[{"x": 409250, "y": 3391330, "q": 80}])  # doctest: +SKIP
        >>> now = twin.flood(rain_from_sensors="2h", until="3h")   # what the rain so far does  # doctest: +SKIP
        """
        from twin_core.adapters.flood import run_flood

        _check_kwargs("Twin.flood()", kwargs, [run_flood], skip=("twin", "scenario", "run"))
        return run_flood(self, scenario, run, **kwargs)

    def crowd(self, area: str | None = None, *, ifc=None, storey=None, anchor=None, **kwargs):
        """Evacuate a plaza or station area, or a storey of an IFC model; results saved under scenario/run.

        Parameters
        ----------
        area : an ``areas`` feature id or name (``"A001"``: the sample plaza)
        agents, density : how many people: a number, or persons per m2 (give one)
        scenario, run : where the results go (None: the base; a new run id)
        until : how long at most, seconds or ``"30min"`` (1800 s)
        model : "csm" (collision-free speed model, default) or "sfm" (social force)
        ifc, storey, anchor : evacuate one storey of an IFC file instead of ``area`` (``storey``: name,
            GlobalId or index, 0 the lowest), placed in the twin's CRS by the model's georeference or by
            ``anchor`` (``(x, y[, z[, rotation_deg]])`` in the twin's CRS metres, or a :class:`bim_import.Anchor`;
            lon/lat is refused). Every part of the floor with an exit is kept; on a storey with no external door
            the stairs coming up to it are its exits
        params : a :class:`simulation.crowd.CrowdParameters` or a dict of some of its fields; ``model=`` and
            ``trajectory_interval=``, where given, win over its ``model`` and ``record_interval``
        flooded_by, flood_time, wading_depth : evacuate in the storm: a flood run's water deeper than 0.5 m
            is no floor, exits under it close, people cut off are counted (``cut_off_persons``)
        closed_exits, exits, waypoints, route, measurement_lines, seed, save, progress : see
            :func:`twin_core.adapters.crowd.run_crowd`

        Returns
        -------
        CrowdRun: ``.scenario``, ``.run``, ``.summary`` (dict: ``evacuation_time_s``, ``evacuated`` ...),
        ``.result`` (:class:`simulation.crowd.CrowdResult`), ``.saved`` (the result names stored)

        Examples
        --------
        >>> run = twin.crowd("A001", agents=2000, until="10min")                        # doctest: +SKIP
        >>> run = twin.crowd(ifc="model.ifc", storey=0, agents=100)                      # doctest: +SKIP
        >>> run = twin.crowd("A001", agents=2000, flooded_by="storm50", flood_time="45min")  # doctest: +SKIP
        """
        from twin_core.adapters.crowd import run_crowd, storey_crowd_kwargs

        _check_kwargs("Twin.crowd()", kwargs, [run_crowd], skip=("twin", "area"))
        if ifc is not None or storey is not None or anchor is not None:
            kwargs = storey_crowd_kwargs(self, area, ifc, storey, anchor, kwargs)
            area = None
        return run_crowd(self, area, **kwargs)

    def traffic(self, scenario: str | None = None, run: str | None = None, **kwargs):
        """Traffic on the scenario's road network: a static user equilibrium (``mode="assign"``, default) or
        the mesoscopic simulation with vehicle trips (``mode="simulate"``); results saved under scenario/run.

        Parameters
        ----------
        scenario, run : as :meth:`flood`
        mode : "assign" or "simulate"
        period : "am" (default), "pm" or "offpeak"
        demand_scale : multiplies the land-use trip rates (None: the scale that gives the base city the real
            Chengdu peak's vehicles per km of road, :func:`~twin_core.adapters.traffic.demo_demand_scale`)
        until : (simulate) how long, seconds or ``"1h"``
        flooded_by : a flood run under the same scenario whose flooded roads are closed
        closures, capacity_factor, method, rgap, max_iter ... : see
            :func:`twin_core.adapters.traffic.run_assign` and :func:`~twin_core.adapters.traffic.run_simulate`

        Returns
        -------
        TrafficRun: ``.scenario``, ``.run``, ``.summary`` (dict), ``.result`` (the engine's result) and
        ``.links`` (the link layer with flows or loads)
        """
        from twin_core.adapters.traffic import run_assign, run_simulate, run_traffic

        mode = kwargs.get("mode", "assign")
        fn = {"assign": run_assign, "simulate": run_simulate}.get(mode)
        if fn is not None:  # a bad mode is run_traffic's clear error
            _check_kwargs(f"Twin.traffic(mode={mode!r})", {k: v for k, v in kwargs.items() if k != "mode"}, [fn],
                          skip=("twin", "scenario", "run"))
        return run_traffic(self, scenario, run, **kwargs)

    def sweep(self, engine: str, grid: dict | None = None, **kwargs):
        """Run ``engine`` ("flood", "traffic", "crowd") once per combination of ``grid`` values (and per
        scenario of ``scenarios=``); a DataFrame with one row per run. See :func:`twin_core.sweep.sweep`.

        Examples
        --------
        >>> df = twin.sweep("flood", {"storm": ["10y", "50y"]}, scenarios=[None, "levee"],  # doctest: +SKIP
        ...                 duration="1h")
        """
        from twin_core.sweep import sweep

        return sweep(self, engine, grid, **kwargs)

    def sunlight(self, date="2026-01-20", start: str = "08:00", end: str = "16:00", *, bounds=None,
                 spacing: float = 5.0, height: float = 0.0, scenario: str | None = None, run: str | None = None,
                 step_minutes: float = 10.0, solar_time: bool = False, save: bool = True, use_bim: bool = True,
                 progress=None):
        """Hours of direct sun on a ground grid (日照分析), buildings as of ``scenario``; saved as the raster
        result ``sunlight_hours``.

        Parameters
        ----------
        date : the day (Chinese rules count on 大寒, Major Cold, about 20 January)
        start, end : "HH:MM" clock time in the twin's time zone (or true solar time with ``solar_time``)
        bounds : (xmin, ymin, xmax, ymax) in the twin's CRS (default: the whole twin: slow)
        spacing : cell size in metres;  height : sample height above the ground in metres
        step_minutes : time step;  use_bim : the stored BIM meshes replace their LoD1 blocks

        Returns
        -------
        AnalysisRun: ``.scenario``, ``.run``, ``.result`` (a :class:`cim.raster.Raster` of hours, NaN under
        buildings) and ``.summary`` (dict: what it was run with, ``mean_hours`` ...)

        Examples
        --------
        >>> r = twin.sunlight("2026-01-20", bounds=(409500, 3390700, 409700, 3390900), spacing=10)  # doctest: +SKIP
        """
        from twin_core.adapters.analysis import _sunlight

        return _sunlight(self, date, start, end, bounds=bounds, spacing=spacing, height=height,
                         scenario=scenario, run=run, step_minutes=step_minutes, solar_time=solar_time, save=save,
                         use_bim=use_bim, progress=progress)

    def compare(self, a, b, *, scenario_a: str | None = None, scenario_b: str | None = None,
                save: str | bool | None = None):
        """What a what-if changes: run ``b`` against run ``a``, two stored runs of one engine (flood, traffic,
        access, crowd, sunlight, viewshed), changes as B - A.

        ``a``, ``b``: run ids (``scenario_a`` / ``scenario_b`` pick the scenario where an id is under several) or
        (scenario, run) pairs. ``save``: a run id (or True for a new one) to store the comparison under B's
        scenario, for :meth:`export_result` and :meth:`view`.

        Returns
        -------
        twin_core.adapters.compare.Comparison: ``.summary`` (each run's figures ``*_a``, ``*_b`` and
        ``*_change``), ``.tables`` (feature by feature: newly flooded, out of reach, people per exit ...),
        ``.rasters`` (e.g. ``max_depth_diff``), ``.differences`` (run parameters that differ besides the
        scenario), ``.saved_as``.

        Examples
        --------
        >>> c = twin.compare("storm50", "storm50-levee", save="levee-effect")       # doctest: +SKIP
        >>> c.summary["newly_flooded_m2"], c.tables["exposure_buildings_change"].head()  # doctest: +SKIP
        >>> twin.view(result=("levee-effect", "max_depth_diff"))                    # doctest: +SKIP
        """
        from twin_core.adapters.compare import compare_runs

        cmp = compare_runs(self, a, b, scenario_a=scenario_a, scenario_b=scenario_b)
        if save is not None and save is not False:  # save="" is a bad id, refused, not "do not save"
            cmp.saved_as = cmp.save(self, None if save is True else save)
        return cmp

    def access(self, from_kind: str = "fire_station", within=None, **kwargs):
        """Time from the nearest ``from_kind`` station (a ``pois`` kind) to every building, and which are
        within ``within`` (fire stations: 4 min by default, GB 51054-2014), on a scenario's roads, dry or as
        a flood run leaves them; saved as the table result ``access_buildings``.

        Roads are driven at 30 km/h, the average speed both standards assume, or their limit where lower
        (``drive_kmh=``; None: at the limits); ``speeds_from=`` a traffic simulate run slows each road to its
        mean speed there (rush hour).

        Keywords: ``scenario``, ``run``, ``flooded_by``, ``flood_time``, ``impassable_depth``, ``drive_kmh``,
        ``speeds_from``, ``save``, ``progress``; see :func:`twin_core.adapters.access.run_access`.

        Examples
        --------
        >>> r = twin.access("fire_station", flooded_by="storm50")       # doctest: +SKIP
        >>> r.summary["lost"], r.result.sort_values("time_s").tail()    # doctest: +SKIP
        """
        from twin_core.adapters.access import run_access

        _check_kwargs("Twin.access()", kwargs, [run_access], skip=("twin", "from_kind", "within"))
        return run_access(self, from_kind, within, **kwargs)

    def viewshed(self, observer, *, observer_height: float = 1.6, target_height: float = 0.0,
                 radius: float | None = None, scenario: str | None = None, run: str | None = None, save: bool = True,
                 use_bim: bool = True, progress=None):
        """The DEM cells visible from ``observer`` (x, y in the twin's CRS), terrain and buildings blocking;
        saved as the raster result ``viewshed`` (1 visible, 0 hidden, NaN beyond ``radius``).

        Heights are metres above the ground; ``radius`` in metres (None: the whole DEM).

        Returns
        -------
        AnalysisRun: ``.scenario``, ``.run``, ``.result`` (the Raster) and ``.summary`` (``visible_fraction``,
        ``visible_m2`` ...)

        Examples
        --------
        >>> r = twin.viewshed((409600, 3390800), radius=300, observer_height=30)          # doctest: +SKIP
        """
        from twin_core.adapters.analysis import _viewshed

        return _viewshed(self, observer, observer_height=observer_height, target_height=target_height, radius=radius,
                         scenario=scenario, run=run, save=save, use_bim=use_bim, progress=progress)

    def import_ifc(self, path, **kwargs):
        """Import an IFC model into the twin (one transaction); see :func:`bim_import.import_ifc`."""
        from bim_import import import_ifc

        return import_ifc(path, self.store, twin_crs=self.crs, **kwargs)

    def check_bim(self, path, rules, **kwargs):
        """Check an IFC model against planning rules (limits from ``rules`` or the CIM parcel);
        see :func:`bim_import.check_compliance`.

        ``anchor=(x, y)`` (or the rules' ``anchor: [x, y]``) places a model without georeference with its 0.00
        level on the twin's ground, the ``dem`` at x, y, as ``twin check-bim --anchor X,Y`` and
        ``twin bim import`` do; ``(x, y, z[, rotation_deg])`` keeps the height given. ``report.anchor_z`` says
        where the height came from (``source``: ``dem``, ``anchor``, or ``default``: 0 where the twin has no DEM
        there).

        Examples
        --------
        >>> report = twin.check_bim("tower.ifc", "plot7.yaml", anchor=(500034.0, 3390057.0))  # doctest: +SKIP
        >>> report.anchor_z["source"], report.passed                                         # doctest: +SKIP
        ('dem', True)
        """
        from bim_import import check_compliance
        from twin_core.adapters.analysis import COMPLIANCE_EVALUATORS

        kwargs.setdefault("evaluators", COMPLIANCE_EVALUATORS)  # the rules that need the city (neighbours' sun)
        return check_compliance(path, rules, store=self.store, twin_crs=self.crs, **kwargs)

    def view(self, layers=None, **kwargs):
        """An offline pydeck ``Deck`` of the twin for Jupyter: ``layers`` (a name or names; default the
        buildings) as of ``scenario``, buildings extruded and coloured by ``colour_by``, and a stored result
        with ``result=RUN`` or ``result=(RUN, NAME)`` (a raster as a coloured image, a flood's depth at
        ``time=`` from the nearest snapshot, link loads by V/C, exposure/access tables on their features; the
        colour scale in ``deck.legend`` and on the page); see :func:`twin_core.view.view`.

        Examples
        --------
        >>> twin.view(["buildings", "road_links"], scenario="river_levee")               # doctest: +SKIP
        >>> twin.view(result=(flood.run, "depth_snapshots"), time="30min")               # doctest: +SKIP
        """
        from twin_core.view import view

        _check_kwargs("Twin.view()", kwargs, [view], skip=("twin",))
        return view(self, layers, **kwargs)

    def summary(self) -> dict[str, Any]:
        """Counts of everything in the twin (for `twin info`)."""
        res = self.results()
        return {
            "name": self.name,
            "crs": self.crs,
            "timezone": self.timezone,
            "store": self.store.uri,
            "extent": self.extent,
            "layers": {n: self.store.layer_info(n)["count"] for n in self.layers() if not n.startswith("res_")},
            "rasters": {n: [self.store.raster_info(n)[k] for k in ("height", "width")] for n in self.rasters()
                        if not n.startswith("res_")},
            "scenarios": self.scenarios.names(),
            "results": int(len(res)),
            "runs": int(len(res[["scenario", "run"]].drop_duplicates())),
        }


def _minutes(seconds) -> str:
    """``1800`` -> ``"30 min"``, ``5400`` -> ``"90 min"``, ``7200`` -> ``"2 h"``, ``45`` -> ``"45 s"``."""
    s = float(seconds)
    if s < 60:
        return f"{s:g} s"
    if s % 3600 == 0:
        return f"{s / 3600:g} h"
    return f"{s / 60:.4g} min"


def _check_scenario_param(key: str, value, scenario) -> None:
    """:func:`~twin_core.adapters.scenario_params.check_scenario_param` as the twin's scenarios' ``param_check``."""
    from twin_core.adapters.scenario_params import check_scenario_param

    check_scenario_param(key, value, scenario=scenario)


def describe_runs(store, results, *, meta: dict | None = None) -> dict:
    """:func:`describe_run` of every run in ``results`` (rows of :func:`cim.results.list_results`), keyed by
    (scenario, run): what :meth:`Twin.runs` and the map's run picker show. The summaries are read from the
    store's index in one go (a JSON result lives there), not once per run. ``meta``: the store's
    :meth:`~cim.store.base.Store.get_meta` when the caller read it already (for ``results`` too: the index is
    then not read again)."""
    from cim.results import _json_value, _meta_key  # the index read once, not once per run

    entries = {}
    if (results["name"] == "summary").any():
        entries = store.get_meta() if meta is None else meta
    out = {}
    for (scen, run), g in results.groupby(["scenario", "run"], sort=False):
        engine = next((e for e in map(engine_of, g["meta"]) if e), "")
        summary = {}
        if engine and (g["name"] == "summary").any():
            summary = _json_value(entries.get(_meta_key(scen, run, "summary")) or {})
        meta = next((m for m in g["meta"] if isinstance(m, dict) and len(m) > 1), {})  # more than its engine
        try:
            out[(scen, run)] = describe_run(engine, summary if isinstance(summary, dict) else {}, meta)
        except (TypeError, ValueError):  # a summary of another shape (saved by hand): no line, the listing goes on
            out[(scen, run)] = ""
    return out


def describe_run(engine: str, summary: dict, meta: dict | None = None) -> str:
    """A short line telling one stored run from others of its engine (the ``about`` of :meth:`Twin.runs`):

    - flood: the storm (return period, duration, rain depth) or the rain given / observed; the drainage
      (a rate, or a per-cell grid with its raster, range and mean) and the infiltration, when there is any; the
      point inflows (a river fed from upstream: name and constant flow or hydrograph peak, or how many and
      their volume); "water bodies started dry" when the run did not start them at their normal level;
    - traffic: mode and period, demand scale, the flood run that closed roads, closed links;
    - crowd: the area (id and name) or the IFC file and storey, agents, model;
    - access: the stations' kind and count, the time limit, the flood run;
    - compare: what was compared, run A vs run B;
    - sunlight / viewshed / sweep: their parameters (from the results' ``meta``).

    ``summary``: the run's stored summary (``{}`` when it has none); ``meta``: one of its results' meta.
    Empty when nothing is known (results saved by hand); a summary from an older version missing a key
    leaves that part out.

    >>> describe_run("flood", {"storm": {"return_period_y": 50, "duration_s": 3600, "total_mm": 74.2},
    ...                        "drainage_mm_h": "per cell", "infiltration_mm_h": 10.0, "drainage_mm_h_grid":
    ...                        {"raster": "sewers", "min_mm_h": 0.0, "max_mm_h": 50.0, "mean_mm_h": 25.0}})
    "50-year storm, 1 h, 74 mm, drainage per cell 'sewers' (0-50, mean 25 mm/h), infiltration 10 mm/h"
    >>> describe_run("flood", {"storm": {"return_period_y": 50, "duration_s": 3600, "total_mm": 74.2},
    ...                        "inflows": [{"name": "jin", "constant": True, "peak_m3_s": 80.0}]})
    "50-year storm, 1 h, 74 mm, inflow 'jin' 80 m3/s"
    >>> describe_run("crowd", {"area_id": "A001", "name": "Plaza", "agents": 200, "model": "csm"})
    'A001 Plaza, 200 agents, csm'
    >>> describe_run("crowd", {"area_id": "A001", "agents": 500, "model": "csm", "flooded_by": "storm50",
    ...                        "flood_time_s": 2700.0})
    'A001, 500 agents, csm, flooded by storm50 at 45 min'
    """
    meta = meta or {}
    s = summary or {}
    parts: list[str] = []
    if engine == "flood":
        storm = s.get("storm") if isinstance(s.get("storm"), dict) else meta.get("storm")
        storm = storm if isinstance(storm, dict) else {}
        if storm.get("return_period_y") is not None:
            parts.append(f"{float(storm['return_period_y']):g}-year storm")
        elif storm.get("gauges"):
            parts.append(f"observed rain ({len(storm['gauges'])} gauge{'s' if len(storm['gauges']) != 1 else ''})")
        elif storm.get("formula"):
            parts.append(str(storm["formula"]))
        if storm.get("duration_s"):
            parts.append(_minutes(storm["duration_s"]))
        if storm.get("total_mm") is not None:
            parts.append(f"{float(storm['total_mm']):.0f} mm")
        # the losses: one storm with sewers working or blocked in half the city are two runs
        for key, what in (("drainage_mm_h", "drainage"), ("infiltration_mm_h", "infiltration")):
            v, grid = s.get(key), s.get(f"{key}_grid")
            if isinstance(grid, dict):
                name = f" {grid['raster']!r}" if grid.get("raster") else ""
                parts.append(f"{what} per cell{name} ({float(grid['min_mm_h']):g}-{float(grid['max_mm_h']):g}, "
                             f"mean {float(grid['mean_mm_h']):.3g} mm/h)")
            elif isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0:  # none (0): the default, unsaid
                parts.append(f"{what} {float(v):g} mm/h")
            elif v == "per cell":
                parts.append(f"{what} per cell")
        inflows = s.get("inflows") if isinstance(s.get("inflows"), list) else []
        inflows = [i for i in inflows if isinstance(i, dict) and isinstance(i.get("peak_m3_s"), (int, float))]
        if len(inflows) > 3:  # a whole catchment's outfalls: how many and what they brought
            vol = sum(float(i.get("volume_m3") or 0.0) for i in inflows)
            parts.append(f"{len(inflows)} inflows, {vol:.3g} m3")
        elif inflows:  # a storm alone and one with the river fed from upstream are two runs
            each = [f"{i.get('name', '')!r} " + (f"{float(i['peak_m3_s']):g} m3/s" if i.get("constant") else
                                                 f"peak {float(i['peak_m3_s']):g} m3/s")
                    for i in inflows]
            parts.append(("inflow " if len(each) == 1 else "inflows ") + ", ".join(each))
        if s.get("initial_water") is False:
            parts.append("water bodies started dry")
    elif engine == "traffic":
        parts.append(" ".join(str(s[k]) for k in ("mode", "period") if s.get(k)))
        if s.get("demand_scale") is not None:
            parts.append(f"demand x{float(s['demand_scale']):.2f}")
        if s.get("flooded_by"):
            parts.append(f"flooded by {s['flooded_by']}")
        closed = s.get("closed_links")
        n = len(closed) if isinstance(closed, list) else 0
        if n:
            parts.append(f"{n} link{'s' if n != 1 else ''} closed")
    elif engine == "crowd":
        if s.get("ifc"):
            storey = s.get("storey")
            parts.append(os.path.basename(str(s["ifc"])) + (f" storey {storey}" if storey not in (None, "") else ""))
        elif s.get("area_id") or s.get("name"):
            place = " ".join(str(s[k]) for k in ("area_id", "name") if s.get(k))
            parts.append(place if len(place) <= 36 else place[:33] + "...")  # room for the agents and model
        elif s:
            parts.append("walkable area given")
        if s.get("agents") is not None:
            parts.append(f"{int(s['agents'])} agents")
        if s.get("model"):
            parts.append(str(s["model"]))
        if s.get("flooded_by"):  # the dry and the flooded plaza read alike without it
            at = s.get("flood_time_s")
            parts.append(f"flooded by {s['flooded_by']}"
                         + (f" at {_minutes(at)}" if isinstance(at, (int, float)) and math.isfinite(at) else ""))
    elif engine == "access":
        if s.get("from_kind") or meta.get("from_kind"):
            kind = s.get("from_kind") or meta.get("from_kind")
            parts.append(f"from {kind}" + (f" ({s['stations']})" if s.get("stations") is not None else ""))
        within = s.get("within_s", meta.get("within_s"))
        if within is not None:
            parts.append(f"within {_minutes(within)}")
        if s.get("flooded_by"):
            parts.append(f"flooded by {s['flooded_by']}")
    elif engine == "compare":
        a, b = s.get("a") or meta.get("a"), s.get("b") or meta.get("b")
        if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)) and len(a) == 2 and len(b) == 2:
            same = a[0] == b[0]
            shown = [str(x[1]) if same else f"{x[0]}/{x[1]}" for x in (a, b)]
            what = s.get("compared")
            parts.append(f"{what + ': ' if what else ''}{shown[0]} vs {shown[1]}")
    elif engine == "sunlight":
        if meta.get("date"):
            parts.append(" ".join(str(meta[k]) for k in ("date",) if meta.get(k))
                         + (f" {meta['start']}-{meta['end']}" if meta.get("start") and meta.get("end") else ""))
        if meta.get("spacing_m") is not None:
            parts.append(f"{float(meta['spacing_m']):g} m grid")
    elif engine == "viewshed":
        obs = meta.get("observer")
        if isinstance(obs, (list, tuple)) and len(obs) >= 2:
            parts.append(f"from {float(obs[0]):.0f},{float(obs[1]):.0f}")
        if meta.get("radius_m") is not None:
            parts.append(f"radius {float(meta['radius_m']):g} m")
    elif engine == "sweep":
        grid = meta.get("grid") if isinstance(meta.get("grid"), dict) else {}
        if meta.get("sweep_of") or grid:
            n = len(meta.get("scenarios") or [None])  # every grid point on every scenario
            for v in grid.values():
                n *= len(v) if isinstance(v, list) else 1
            parts.append(f"{meta.get('sweep_of') or ''} over {', '.join(map(str, grid))} ({n} runs)".strip())
    return ", ".join(p for p in parts if p)


def _forwarded_signature(method, fns, skip, *, keep_var_keyword: bool = False) -> inspect.Signature:
    """``method``'s signature with its ``**kwargs`` replaced by the keyword parameters of the functions it
    forwards to: help(twin.flood) and Jupyter's Shift-Tab showed only ``(scenario=None, run=None, **kwargs)``.
    ``keep_var_keyword``: the forwarded function's own ``**kw`` stays at the end (a sweep's fixed parameters)."""
    own = [p for p in inspect.signature(method).parameters.values() if p.kind != p.VAR_KEYWORD]
    names = {p.name for p in own} | set(skip)
    extra = []
    for fn in fns:
        for fn_ in (fn, *getattr(fn, "forwards_to", ())):
            for p in inspect.signature(fn_).parameters.values():
                if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name not in names:
                    names.add(p.name)
                    extra.append(p.replace(kind=p.KEYWORD_ONLY))
    if keep_var_keyword:
        extra += [p for fn in fns for p in inspect.signature(fn).parameters.values() if p.kind == p.VAR_KEYWORD][:1]
    return inspect.signature(method).replace(parameters=own + extra)


def _set_engine_signatures() -> None:
    from twin_core.adapters.crowd import run_crowd
    from twin_core.adapters.flood import run_flood
    from twin_core.adapters.access import run_access
    from twin_core.adapters.traffic import run_traffic
    from twin_core.sweep import sweep
    from twin_core.view import view

    Twin.flood.__signature__ = _forwarded_signature(Twin.flood, [run_flood], ("twin",))
    Twin.crowd.__signature__ = _forwarded_signature(Twin.crowd, [run_crowd], ("twin",))
    Twin.traffic.__signature__ = _forwarded_signature(Twin.traffic, [run_traffic], ("twin",))
    # help(twin.access), twin.view, twin.sweep and twin.layer showed ``**kwargs`` only (Shift-Tab offered nothing)
    Twin.access.__signature__ = _forwarded_signature(Twin.access, [run_access], ("twin",))
    Twin.view.__signature__ = _forwarded_signature(Twin.view, [view], ("twin",))
    Twin.sweep.__signature__ = _forwarded_signature(Twin.sweep, [sweep], ("twin",), keep_var_keyword=True)
    Twin.layer.__signature__ = _forwarded_signature(Twin.layer, [Store.read_layer], ("self",))


_set_engine_signatures()  # the adapters import only numpy, pandas and twin_core's leaves at import time

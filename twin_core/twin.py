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

import os
from typing import Any

from cim.crs import DEFAULT_CRS, check_projected
from cim.raster import Raster, Window
from cim.results import list_results, load_result, new_run_id, save_result
from cim.scenario import BASE, Scenario, Scenarios
from cim.store import Store, is_dsn, open_store
from pyproj import CRS

from twin_core.errors import CRSError, LayerNotFoundError, StoreConnectionError, StoreError

__all__ = ["Twin"]


def _check_kwargs(what: str, kwargs: dict, fns, skip=("twin", "progress")) -> None:
    """A keyword no engine function takes fails with what they do take (a bare TypeError named an internal
    function: ``prepare_flood() got an unexpected keyword argument 'return_period'``)."""
    import inspect

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


class Twin:
    """A city twin: one store (GeoPackage file or PostGIS), its CRS, scenarios and results.

    Open with :meth:`Twin.open` (existing) or :meth:`Twin.create` (new).
    """

    def __init__(self, store: Store) -> None:
        self.store = store
        self.scenarios = Scenarios(store)

    # -- opening ---------------------------------------------------------
    @classmethod
    def open(cls, target: "str | os.PathLike | Store", *, schema: str | None = None) -> "Twin":
        """Open an existing twin from a ``.gpkg`` path or a ``postgresql://`` DSN.

        Examples
        --------
        >>> Twin.open("/nonexistent/city.gpkg")
        Traceback (most recent call last):
        ...
        twin_core.errors.StoreConnectionError: GeoPackage /nonexistent/city.gpkg does not exist; create it with open_store(path, create=True) or `twin build`
        """
        store = open_store(target, schema=schema)
        if store.crs is None and not isinstance(target, Store):
            uri = store.uri
            store.close()
            where = ("the database and schema (postgresql://host/db?schema=name)" if is_dsn(target)
                     else "the path")
            raise StoreConnectionError(
                f"{uri} holds no twin (no CRS recorded): check {where}, or build one with `twin build` "
                "or Twin.create()")
        return cls(store)

    @classmethod
    def create(cls, target: "str | os.PathLike", *, crs: str = DEFAULT_CRS, name: str | None = None,
               timezone: str = "Asia/Shanghai", schema: str | None = None) -> "Twin":
        """Create a new twin (file or PostGIS schema) with a projected CRS in metres."""
        c = check_projected(crs)
        store = open_store(target, create=True, crs=c.to_string(), schema=schema)
        meta = store.get_meta()
        if meta.get("crs") and CRS.from_user_input(meta["crs"]) != CRS.from_user_input(c):
            store.close()
            raise CRSError(f"{store.uri} already holds a twin in {meta['crs']}, not {c.to_string()}: its data "
                           "would be read in the wrong CRS. Open it with Twin.open(), or create the new twin "
                           "at another path or schema")
        store.set_meta({
            "name": name or meta.get("name") or os.path.splitext(os.path.basename(str(target)))[0],
            "timezone": timezone,
            "crs": c.to_string(),
        })
        return cls(store)

    def close(self) -> None:
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

    # -- metadata --------------------------------------------------------
    @property
    def meta(self) -> dict[str, Any]:
        return {k: v for k, v in self.store.get_meta().items() if not k.startswith(("result:", "scenario:", "token:"))}

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
        """(xmin, ymin, xmax, ymax) in the twin CRS, from the metadata or the layers."""
        ext = self.store.get_meta().get("extent")
        if ext:
            return ext
        bounds = [self.store.layer_info(n)["bounds"] for n in self.store.list_layers()]
        bounds = [b for b in bounds if b]
        if not bounds:
            return None
        return [min(b[0] for b in bounds), min(b[1] for b in bounds), max(b[2] for b in bounds), max(b[3] for b in bounds)]

    # -- data ----------------------------------------------------------------
    def layers(self) -> list[str]:
        return self.store.list_layers()

    def rasters(self) -> list[str]:
        return self.store.list_rasters()

    def scenario(self, name: str | None = None) -> Scenario:
        return self.scenarios.get(name or BASE)

    def layer(self, name: str, scenario: str | None = None, **kwargs):
        """A layer as a GeoDataFrame, as of ``scenario`` (default: the base).

        ``bbox=(xmin, ymin, xmax, ymax)``, ``where={"use": "school"}``, ``columns=[...]``
        filter it.
        """
        return self.scenario(scenario).layer(name, **kwargs)

    def raster(self, name: str, scenario: str | None = None, *, window: Window | None = None, bounds=None) -> Raster:
        """A raster as of ``scenario`` (default: the base)."""
        return self.scenario(scenario).raster(name, window=window, bounds=bounds)

    # -- results ---------------------------------------------------------------
    def save_result(self, scenario: str, run: str, name: str, obj: Any, *, meta: dict | None = None) -> None:
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

    def results(self, scenario: str | None = None, run: str | None = None):
        return list_results(self.store, scenario=scenario, run=run)

    @staticmethod
    def new_run_id(prefix: str = "run") -> str:
        return new_run_id(prefix)

    # -- engines and analyses (thin: each delegates to its adapter) --------------
    def flood(self, scenario: str | None = None, run: str | None = None, **kwargs):
        """Run a design storm (``storm="50y", duration="1h"``) on a scenario; see
        :func:`twin_core.adapters.flood.run_flood`. Results are saved under scenario/run."""
        from twin_core.adapters.flood import run_flood

        _check_kwargs("Twin.flood()", kwargs, [run_flood], skip=("twin", "scenario", "run"))
        return run_flood(self, scenario, run, **kwargs)

    def crowd(self, area: str | None = None, **kwargs):
        """Evacuate a plaza/station area (``agents=5000``); see :func:`twin_core.adapters.crowd.run_crowd`."""
        from twin_core.adapters.crowd import run_crowd

        _check_kwargs("Twin.crowd()", kwargs, [run_crowd], skip=("twin", "area"))
        return run_crowd(self, area, **kwargs)

    def traffic(self, scenario: str | None = None, run: str | None = None, **kwargs):
        """Traffic assignment (``mode="assign"``) or mesoscopic simulation (``mode="simulate"``) on the road
        layers; see :func:`twin_core.adapters.traffic.run_traffic`."""
        from twin_core.adapters.traffic import run_assign, run_simulate, run_traffic

        mode = kwargs.get("mode", "assign")
        fn = {"assign": run_assign, "simulate": run_simulate}.get(mode)
        if fn is not None:  # a bad mode is run_traffic's clear error
            _check_kwargs(f"Twin.traffic(mode={mode!r})", {k: v for k, v in kwargs.items() if k != "mode"}, [fn],
                          skip=("twin", "scenario", "run"))
        return run_traffic(self, scenario, run, **kwargs)

    def sweep(self, engine: str, grid: dict | None = None, **kwargs):
        """Run ``engine`` ("flood", "traffic", "crowd") once per combination of ``grid`` values (and per
        scenario of ``scenarios=``); a DataFrame with one row per run. See :func:`twin_core.sweep.sweep`."""
        from twin_core.sweep import sweep

        return sweep(self, engine, grid, **kwargs)

    def import_ifc(self, path, **kwargs):
        """Import an IFC model into the twin (one transaction); see :func:`bim_import.import_ifc`."""
        from bim_import import import_ifc

        return import_ifc(path, self.store, twin_crs=self.crs, **kwargs)

    def check_bim(self, path, rules, **kwargs):
        """Check an IFC model against planning rules (limits from ``rules`` or the CIM parcel);
        see :func:`bim_import.check_compliance`."""
        from bim_import import check_compliance

        return check_compliance(path, rules, store=self.store, twin_crs=self.crs, **kwargs)

    def view(self, **kwargs):
        """An offline pydeck ``Deck`` of the twin for Jupyter; see :func:`twin_core.view.view`."""
        from twin_core.view import view

        return view(self, **kwargs)

    def summary(self) -> dict[str, Any]:
        """Counts of everything in the twin (for `twin info`)."""
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
            "results": int(len(self.results())),
        }

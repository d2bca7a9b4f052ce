"""What a what-if changes: two stored runs of one engine, side by side, in numbers.

"What does the levee change?", "what does closing this exit cost?": :func:`compare_runs` reads two stored
runs of the same engine (each under its own scenario, or both under one) and returns a :class:`Comparison`:
headline figures of each run and their change, the feature-by-feature changes, a difference raster where
the engine has one, and the run parameters that differ besides the scenario (a 10-year storm compared with a
50-year one is said to be so, not hidden in the figures).

- **flood**: ``max_depth_diff`` (B - A, m); flooded area of each, newly flooded and no longer flooded area;
  per exposed building / road link / POI whether it is newly flooded, no longer flooded, deeper, shallower or
  the same (``exposure_buildings_change`` ...);
- **traffic**: per link the flow (assign) or vehicles (simulate) of each and the difference
  (``link_changes``), total travel time or mean trip time, trips left without a path
  (:func:`twin_core.adapters.traffic.compare_traffic_runs`);
- **access**: per building whether it is newly within reach, out of reach, or reached faster or slower
  (``access_buildings_change``), the counts within reach;
- **crowd**: evacuation time, people out, jams, and per exit the people it took (``exit_changes``);
- **sunlight**, **viewshed**: the raster's difference (``sunlight_hours_diff``: hours of sun B - A).

``Comparison.save(twin, run)`` stores it as a run of its own (engine ``compare``) under B's scenario, so that
``twin runs``, ``twin export`` and ``twin.view(result=...)`` reach it.

Examples
--------
>>> import pandas as pd
>>> from twin_core.adapters.compare import change_of
>>> change_of(pd.Series([0.0, 0.4, 0.5, 0.6, float("nan")]), pd.Series([0.4, 0.0, 0.52, 0.35, 0.3]), 0.3, 0.05)
['newly flooded', 'no longer flooded', 'same', 'shallower', 'deeper']
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from twin_core.errors import ParameterError, RasterError

__all__ = ["compare_runs", "Comparison", "change_of", "ENGINES"]

#: the engines two runs of which can be compared, with the summary keys that are parameters of a run (a
#: difference in one of them besides the scenario is reported)
ENGINES = {
    "flood": ("storm", "grid", "cell_size_m", "threshold_m", "sim_time_s", "buildings", "roof_runoff",
              "drainage_mm_h", "infiltration_mm_h", "drainage_mm_h_grid", "infiltration_mm_h_grid", "boundary",
              "initial_water", "inflows"),
    "traffic": ("mode", "period", "demand_scale", "flooded_by", "flood_timing", "sim_time_s"),
    "access": ("from_kind", "within_s", "speeds", "flooded_by", "flood_time_s", "impassable_depth_m"),
    "crowd": ("area_id", "ifc", "storey", "anchor", "model", "seed", "closed_exits", "route", "flooded_by",
              "flood_time_s", "wading_depth_m", "road_reach_m", "release_rate_per_s"),
    "sunlight": ("date", "start", "end", "solar_time", "bounds", "spacing_m", "height_m", "step_minutes", "use_bim"),
    "viewshed": ("observer", "observer_height_m", "target_height_m", "radius_m", "use_bim"),
}
#: a depth change smaller than this (m) is "the same" (a flood model's depths are not better than a few cm)
SAME_DEPTH_M = 0.05
#: a travel time change smaller than this (s) is "the same"
SAME_TIME_S = 1.0
#: the ``change`` of a table row where B changed nothing (an unreachable building stays unreachable)
UNCHANGED = ("same", "reached in neither")
#: a summary key of run A's figure: ``flooded_area_m2_a``, ``mean_trip_time_a_s`` (its B twin: ``..._b...``)
_PAIR = re.compile(r"^(?P<stem>.+)_a(?P<unit>_s|_m|_m2|_h)?$")
_ENGINE_ALIASES = {"simulation.flood": "flood", "simulation.traffic": "traffic", "simulation.crowd": "crowd",
                   "sun": "sunlight"}


@dataclass
class Comparison:
    """Two runs of one engine, A and B, compared: ``summary`` (each run's headline figures, ``*_a``, ``*_b``
    and ``*_change`` = B - A), ``tables`` (feature-by-feature changes), ``rasters`` (B - A), and
    ``differences``: the run parameters that differ besides the scenario, ``{key: (A's, B's)}``."""

    engine: str
    a: tuple[str, str]
    b: tuple[str, str]
    summary: dict
    tables: dict = field(default_factory=dict)
    rasters: dict = field(default_factory=dict)
    differences: dict = field(default_factory=dict)
    #: the run id it was saved under (:meth:`save`), None until then
    saved_as: str | None = None

    def save(self, twin, run: str | None = None, *, scenario: str | None = None) -> str:
        """Store the comparison as run ``run`` (default a new id ``compare-...``) under ``scenario`` (default
        B's): its ``summary`` (engine ``compare``), tables and rasters. Returns the run id. An id holding
        another engine's run or results saved by hand, or taken under another scenario, is refused
        (:func:`cim.results.claim_run`); an earlier comparison under it is replaced whole (with a
        :class:`~twin_core.errors.RunReplacedWarning`), and results a user added to it stay."""
        from cim.results import claim_run, delete_results, engine_of, list_results, saving_run
        from cim.scenario import normalise_scenario_name

        scen = normalise_scenario_name(scenario) or self.b[0]
        run = claim_run(twin.store, scen, run, "compare")  # another engine's run id, or one saved by hand, refused
        meta = {"engine": "compare", "a": list(self.a), "b": list(self.b)}
        # an id taken under another scenario is refused (check_run_free): one id names one run
        with saving_run(twin.store, scen, run, "compare"):
            idx = list_results(twin.store, scenario=scen, run=run)
            # an earlier comparison under this id, whole (its tables differ)
            mine = [n for n, m in zip(idx["name"], idx["meta"]) if engine_of(m) == "compare"]
            delete_results(twin.store, scen, run, names=mine)
            for name, table in self.tables.items():
                twin.save_result(scen, run, name, table, meta=meta)
            for name, raster in self.rasters.items():
                twin.save_result(scen, run, name, raster, meta=meta)
            twin.save_result(scen, run, "summary", self.to_dict(), meta={"engine": "compare"})
        self.saved_as = run
        return run

    def to_dict(self) -> dict:
        """The summary as stored: engine ``compare``, the runs compared, their engine, the parameter differences."""
        return {"engine": "compare", "compared": self.engine, "a": list(self.a), "b": list(self.b),
                **_plain(self.summary), "differences": {k: [_plain(x), _plain(y)] for k, (x, y) in
                                                       self.differences.items()}}

    def lines(self) -> list[str]:
        """The headline changes, a line each (what ``twin compare`` prints)."""
        (sa, ra), (sb, rb) = self.a, self.b
        out = [f"{self.engine}: A = run {ra!r} ({sa}), B = run {rb!r} ({sb})"]
        paired = set()
        for key, value in self.summary.items():
            m = _PAIR.match(key)
            if m and f"{m['stem']}_b{m['unit'] or ''}" in self.summary:
                unit = m["unit"] or ""
                vb = self.summary[f"{m['stem']}_b{unit}"]
                ch = self.summary.get(f"{m['stem']}_change{unit}")
                paired |= {key, f"{m['stem']}_b{unit}", f"{m['stem']}_change{unit}"}
                out.append(f"  {m['stem']}{unit}: {_fmt(value)} -> {_fmt(vb)}"
                           + (f" ({_signed(ch)})" if ch is not None else ""))
        for key, value in self.summary.items():
            if key not in paired and not isinstance(value, (list, dict)) and key != "note":
                out.append(f"  {key}: {_fmt(value)}")
        for k, (x, y) in self.differences.items():
            out.append(f"  note: the runs differ in {k} besides the scenario: {_setting(k, x)} and {_setting(k, y)}")
        if self.summary.get("note"):
            out.append(f"  note: {self.summary['note']}")
        return out

    def __repr__(self) -> str:
        (sa, ra), (sb, rb) = self.a, self.b
        return (f"<Comparison {self.engine}: {ra!r} ({sa}) -> {rb!r} ({sb}); tables {sorted(self.tables)}, "
                f"rasters {sorted(self.rasters)}>")

    def _repr_html_(self) -> str:
        import html

        rows = "".join(f"<tr><td>{html.escape(x.strip())}</td></tr>" for x in self.lines()[1:])
        return (f"<div><b>{html.escape(self.lines()[0])}</b><table>{rows}</table>"
                f"<small>.summary, .tables {html.escape(str(sorted(self.tables)))}, .rasters "
                f"{html.escape(str(sorted(self.rasters)))}, .save(twin)</small></div>")


def _plain(v):
    if isinstance(v, (np.integer, np.floating, np.bool_)):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    return v


def _fmt(v) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "-"
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, (int, np.integer)):
        return f"{int(v):,}"
    if isinstance(v, (float, np.floating)):
        return f"{v:,.0f}" if abs(v) >= 100 else f"{v:.3g}"
    return str(v)


def _signed(v) -> str:
    s = _fmt(v)
    return s if s.startswith("-") or s == "-" else "+" + s


def _change(summary: dict, key: str, a, b) -> None:
    """``key_a``, ``key_b`` and ``key_change`` (B - A, None when either is missing)."""
    a, b = _plain(a), _plain(b)
    summary[f"{key}_a"], summary[f"{key}_b"] = a, b
    num = all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in (a, b))
    summary[f"{key}_change"] = (b - a) if num else None


def _wet(depth, threshold: float):
    """Flooded as the flood engine counts it (its summary's ``flooded_area_m2`` and exposure tables): deeper than
    the threshold; NaN (nodata) is dry."""
    return np.nan_to_num(np.asarray(depth, dtype=float), nan=0.0) > threshold


def change_of(depth_a: pd.Series, depth_b: pd.Series, threshold: float, same: float) -> list[str]:
    """Per feature, what B does to it against A: ``newly flooded``, ``no longer flooded`` (deeper than
    ``threshold`` in one run only), ``deeper``, ``shallower`` or ``same`` (a depth change under ``same`` m). A
    missing depth (NaN: the feature was not exposed in that run) counts as dry."""
    a = np.nan_to_num(np.asarray(depth_a, dtype=float), nan=0.0)
    b = np.nan_to_num(np.asarray(depth_b, dtype=float), nan=0.0)
    wa, wb = _wet(a, threshold), _wet(b, threshold)
    d = b - a
    out = np.where(wb & ~wa, "newly flooded", np.where(wa & ~wb, "no longer flooded", np.where(
        d >= same, "deeper", np.where(d <= -same, "shallower", "same"))))
    return out.tolist()


def _results_of(twin, key: tuple[str, str]) -> pd.DataFrame:
    """The result index (:func:`cim.results.list_results`) of run ``key`` = (scenario, run)."""
    from cim.results import list_results

    return list_results(twin.store, scenario=key[0], run=key[1])


def _engine(twin, key: tuple[str, str]) -> tuple[str, dict]:
    scen, run = key
    idx = _results_of(twin, key)
    summary = twin.load_result(scen, run, "summary") if "summary" in set(idx["name"]) else {}
    summary = summary if isinstance(summary, dict) else {}
    eng = summary.get("engine")
    if eng is None:  # an analysis (sunlight, viewshed) keeps no summary: its raster's meta says what it was run with
        from cim.results import engine_of

        metas = [m for m in idx["meta"] if isinstance(m, dict)]
        found = next((m for m in metas if engine_of(m)), None)
        eng, summary = (engine_of(found), found) if found is not None else (None, summary)
    eng = _ENGINE_ALIASES.get(eng, eng)
    if eng not in ENGINES:
        raise ParameterError(f"run {run!r} ({scen}) is a {eng or 'result set without an engine'} run; runs of "
                             f"{sorted(ENGINES)} can be compared")
    return eng, summary


def _resolve(twin, run, scenario, side: str) -> tuple[str, str]:
    """The (scenario, run) of run ``side`` ("a" or "b"); errors name its keyword and option (``scenario_a``,
    ``--scenario-a``)."""
    from twin_core.adapters.results_export import find_run

    names = {"arg": f"scenario_{side}", "option": f"--scenario-{side}"}
    if isinstance(run, tuple):
        scen, rid = run
        return find_run(twin, rid, scen, **names), rid
    if not isinstance(run, str) or not run:
        raise ParameterError(f"a run to compare is a run id (text) or (scenario, run), got {run!r}")
    return find_run(twin, run, scenario, **names), run


def compare_runs(twin, a, b, *, scenario_a: str | None = None, scenario_b: str | None = None) -> Comparison:
    """Compare run ``b`` with run ``a`` (B - A): two stored runs of one engine.

    Parameters
    ----------
    a, b : str or (scenario, run)
        Run ids (found under whichever scenario holds them; ``scenario_a`` / ``scenario_b`` pick one where an
        id is under several), or (scenario, run) pairs.

    Returns
    -------
    Comparison
        ``.summary``, ``.tables``, ``.rasters``, ``.differences``; ``.save(twin)`` stores it.
    """
    ka, kb = _resolve(twin, a, scenario_a, "a"), _resolve(twin, b, scenario_b, "b")
    if ka == kb:
        raise ParameterError(f"A and B are the same run {ka[1]!r} ({ka[0]}): compare two different runs, e.g. "
                             "a scenario's run with the base's")
    (ea, sa), (eb, sb) = _engine(twin, ka), _engine(twin, kb)
    if ea != eb:
        raise ParameterError(f"run {ka[1]!r} is a {ea} run and {kb[1]!r} a {eb} run: compare two runs of one engine")
    differences = {k: (sa[k], sb[k]) for k in ENGINES[ea] if k in sa and k in sb and _plain(sa[k]) != _plain(sb[k])}
    if ea == "crowd" and "ifc" in sa and "ifc" in sb and ("anchor" in sa) != ("anchor" in sb):
        # an IFC storey placed by an anchor against one placed by the model's own georeference (no anchor
        # recorded): None is "the model's georeference"
        differences["anchor"] = (sa.get("anchor"), sb.get("anchor"))
    if ea == "crowd" and ("ifc" in sa) != ("ifc" in sb):
        # a plaza (area_id) against an IFC storey (ifc, storey): each key is in one summary only, and was not said
        plaza, model = (sa, sb) if "ifc" in sb else (sb, sa)
        where = {id(plaza): f"area {plaza.get('area_id')}",
                 id(model): f"storey {model.get('storey')!r} of IFC model {model.get('ifc')}"}
        differences["walkable area"] = (where[id(sa)], where[id(sb)])
    if ea == "crowd" and "closed_exits" in sa and "closed_exits" in sb:
        # exits a run's scenario closes (its parameter crowd_closed_exits) are the scenario, not a run setting;
        # those the run closed itself (closed_exits=, --close-exit) are
        own = [set(map(str, s["closed_exits"] or ())) - _scenario_closed_exits(twin, k, s) for k, s in
               ((ka, sa), (kb, sb))]
        differences.pop("closed_exits", None)
        if own[0] != own[1]:
            differences["closed_exits"] = (sorted(own[0]), sorted(own[1]))
    cmp = _COMPARE[ea](twin, ka, kb, sa, sb)
    cmp.differences = differences
    return cmp


def _setting(key: str, value) -> str:
    """A run setting of :attr:`Comparison.differences` as a line says it: a flood's inflows by name and flow
    (``'jin' 80 m3/s``, ``none``), anything else as its repr."""
    if key == "inflows" and isinstance(value, list):
        return ", ".join(f"{i.get('name', '')!r} " + (f"{float(i['peak_m3_s']):g} m3/s" if i.get("constant") else
                                                      f"peak {float(i['peak_m3_s']):g} m3/s")
                         + (f" ({i['closed_edge']} edge closed)" if i.get("closed_edge") else "")
                         for i in value if isinstance(i, dict) and "peak_m3_s" in i) or "none"
    if key == "walkable area":  # "area A001", "storey 'Erdgeschoss' of IFC model ...": said as is
        return str(value)
    return repr(value)


def _scenario_closed_exits(twin, key, summary: dict) -> set:
    """The exits crowd run ``key`` (scenario, run) had closed by its scenario: as its summary records them
    (``closed_exits_scenario``, runs from 2026-12-05), else the scenario's parameter ``crowd_closed_exits`` now."""
    from twin_core.adapters.crowd import CLOSED_EXITS_PARAM

    if "closed_exits_scenario" in summary:
        v = summary["closed_exits_scenario"]
    else:
        try:
            v = twin.scenario(None if key[0] == "base" else key[0]).params().get(CLOSED_EXITS_PARAM)
        except Exception:  # noqa: BLE001 - a scenario deleted since: its closures are not known, none discounted
            v = None
    if isinstance(v, str):
        v = [v]
    return set(map(str, v)) if isinstance(v, (list, tuple)) else set()


def _raster_diff(twin, ka, kb, name: str, unit: str | None, what: str = "the same DEM extent and cell size"):
    ra, rb = twin.load_result(*ka, name), twin.load_result(*kb, name)
    if not ra.same_grid(rb):
        raise RasterError(f"the runs' {name} rasters lie on different grids ({ra.shape} at {tuple(ra.transform)[:6]}"
                          f" and {rb.shape} at {tuple(rb.transform)[:6]}): compare runs made on the same grid "
                          f"({what})")
    da, db = ra.masked(), rb.masked()
    from cim.raster import Raster

    d = (db - da).astype("float32")  # NaN where either run has no value: nodata -9999 as every other raster saved
    diff = Raster(np.where(np.isfinite(d), d, np.float32(-9999.0)), ra.transform, ra.crs, nodata=-9999.0,
                  unit=unit, meta={"a": list(ka), "b": list(kb), "of": name})
    return da, db, diff


#: the layer each exposure table's rows are features of
_EXPOSURE_LAYERS = {"exposure_buildings": "buildings", "exposure_road_links": "road_links", "exposure_pois": "pois"}


def _ids(twin, scenario: str, layer: str, key: str) -> set | None:
    """The ids of ``layer``'s features as of ``scenario`` (None: the twin has no such layer)."""
    if layer not in twin.layers():
        return None
    return set(twin.layer(layer, scenario=scenario, columns=[key])[key].astype(str))


def _fill_depths(twin, t: pd.DataFrame, col: str, k: tuple[str, str], table: str, key: str, depth, transform,
                 threshold: float, water_mask, ground) -> None:
    """Fill ``t[col]`` where it is NaN (the feature is not in run ``k``'s exposure table ``table``: not
    flooded) with the feature's depth in that run's ``depth`` grid, read as the flood adapter reads it
    (:func:`twin_core.adapters.flood.feature_depths`), for the features of the run's scenario; the others stay
    NaN."""
    from twin_core.adapters.flood import feature_depths

    miss = t[col].isna().to_numpy()
    layer = _EXPOSURE_LAYERS[table]
    if not miss.any() or layer not in twin.layers():
        return
    ids = t.loc[miss, key].astype(str)
    gdf = twin.layer(layer, scenario=k[0])
    if key not in gdf:
        return
    gdf = gdf[gdf[key].astype(str).isin(set(ids))]
    if not len(gdf):
        return
    found = feature_depths(depth, transform, layer, gdf, threshold, water_mask=water_mask, ground=ground)
    by_id = dict(zip(found[key].astype(str), found["max_depth_m"].astype(float)))
    t.loc[miss, col] = ids.map(by_id).to_numpy(dtype=float)


def _flood(twin, ka, kb, sa, sb) -> Comparison:
    ta_, tb_ = sa.get("threshold_m", 0.15), sb.get("threshold_m", 0.15)
    if ta_ != tb_:  # each run's exposure tables were cut at its own threshold: they cannot be compared row by row
        raise ParameterError(f"run {ka[1]!r} counts water deeper than {ta_} m as flooding and {kb[1]!r} deeper "
                             f"than {tb_} m: compare runs made with one threshold (threshold=, CLI --threshold)")
    thr = float(ta_)
    da, db, diff = _raster_diff(twin, ka, kb, "max_depth", "m")
    raw = {ka: np.asarray(da, dtype=float), kb: np.asarray(db, dtype=float)}  # each run's max depth, as saved
    context = {ka: (None, None), kb: (None, None)}  # each run's water layer and ground, as its exposure tables had
    cell = abs(diff.transform.a * diff.transform.e)
    on_land = False
    if sa.get("flood_extent") or sb.get("flood_extent"):  # flooding over land, as the runs' summaries count it
        from twin_core.adapters.flood import water_context

        found = {k: water_context(twin, None if k[0] == "base" else k[0], np.shape(da), diff.transform)
                 for k in (ka, kb)}
        for k, summ in ((ka, sa), (kb, sb)):
            if summ.get("flood_extent"):  # a run made before judged flooding over land had no water mask
                context[k] = found[k]
        wm_a, wm_b = found[ka][0], found[kb][0]
        da = da if wm_a is None else np.where(wm_a, np.nan, da)
        db = db if wm_b is None else np.where(wm_b, np.nan, db)
        on_land = wm_a is not None or wm_b is not None
    wa, wb = _wet(da, thr), _wet(db, thr)
    d = np.nan_to_num(db) - np.nan_to_num(da)
    s: dict = {"threshold_m": thr}
    _change(s, "flooded_area_m2", float(wa.sum() * cell), float(wb.sum() * cell))
    s["newly_flooded_m2"] = float((wb & ~wa).sum() * cell)
    s["no_longer_flooded_m2"] = float((wa & ~wb).sum() * cell)
    s["deeper_m2"] = float((wa & wb & (d >= SAME_DEPTH_M)).sum() * cell)
    s["shallower_m2"] = float((wa & wb & (d <= -SAME_DEPTH_M)).sum() * cell)
    s["same_depth_m"] = SAME_DEPTH_M  # deeper / shallower: by at least this much (a depth model's few cm)
    # what deeper_m2 / shallower_m2 count, said where they are printed: a levee that lowers the river under it
    # by 0.9 m changes max_depth_diff there but neither figure (the river is no flood, and land that was
    # flooded in neither run is neither deeper nor shallower); the area changed that no figure counts is given
    s["deeper_shallower_of"] = (f"{'land ' if on_land else ''}cells flooded (deeper than {thr:g} m) in both runs "
                                f"whose max depth changed by at least {SAME_DEPTH_M:g} m")
    moved = np.abs(np.nan_to_num(np.asarray(diff.masked(), dtype=float), nan=0.0)) >= SAME_DEPTH_M
    s["depth_changed_not_flooded_m2"] = float((moved & ~wa & ~wb).sum() * cell)
    s["depth_changed_not_flooded_of"] = (
        f"cells flooded in neither run ({'rivers and lakes, and land ' if on_land else ''}not deeper than "
        f"{thr:g} m) whose max depth changed by at least {SAME_DEPTH_M:g} m: in max_depth_diff, in no figure above"
        + ("; the water bodies' rise: water_max_rise_m" if on_land else ""))
    _change(s, "max_depth_m", sa.get("max_depth_m"), sb.get("max_depth_m"))
    for key in ("exposed_buildings", "exposed_road_links", "exposed_pois", "storage_m3", "outflow_m3", "inflow_m3"):
        if key in sa and key in sb:
            _change(s, key, sa[key], sb[key])
    # the rivers and lakes (left out of the land figures above): how far their water rose in each run
    wba, wbb = sa.get("water_bodies"), sb.get("water_bodies")
    if isinstance(wba, dict) and isinstance(wbb, dict) and "max_rise_m" in wba and "max_rise_m" in wbb:
        _change(s, "water_max_rise_m", wba["max_rise_m"], wbb["max_rise_m"])
    tables = {}

    def names(k):
        return set(_results_of(twin, k)["name"])

    order = {"newly flooded": 0, "deeper": 1, "added": 2, "no longer flooded": 3, "shallower": 4, "removed": 5,
             "same": 6}
    for name in sorted(n for n in names(ka) & names(kb) if n in _EXPOSURE_LAYERS):
        ta, tb = twin.load_result(*ka, name), twin.load_result(*kb, name)
        key = ta.columns[0]
        t = pd.merge(ta[[key, "max_depth_m"]], tb[[key, "max_depth_m"]], on=key, how="outer", suffixes=("_a", "_b"))
        # an exposure table lists the features deeper than the threshold only: a feature missing from one run's
        # has its depth read from that run's max_depth as the run read it (0.1488 -> 0.1528 m was "+0.153 m,
        # newly flooded" when taken as 0); one that run's scenario does not have (built, pulled down) stays NaN
        for side, k in (("a", ka), ("b", kb)):
            _fill_depths(twin, t, f"max_depth_m_{side}", k, name, key, raw[k], diff.transform, thr, *context[k])
        t["max_depth_change_m"] = t["max_depth_m_b"].fillna(0.0) - t["max_depth_m_a"].fillna(0.0)
        t["change"] = change_of(t["max_depth_m_a"], t["max_depth_m_b"], thr, SAME_DEPTH_M)
        ids_a, ids_b = (_ids(twin, k[0], _EXPOSURE_LAYERS[name], key) for k in (ka, kb)) if ka[0] != kb[0] else \
            (None, None)
        if ids_a is not None and ids_b is not None:  # a scenario built or pulled down a feature: not the water
            ids = t[key].astype(str)
            t.loc[~ids.isin(ids_b).to_numpy(), "change"] = "removed"
            t.loc[~ids.isin(ids_a).to_numpy(), "change"] = "added"
        t = t.sort_values(["change", "max_depth_change_m"], key=lambda c: c.map(order) if c.name == "change" else -c.abs(),
                          kind="stable").reset_index(drop=True)
        tables[f"{name}_change"] = t
        what = name[len("exposure_"):]
        counts = t["change"].value_counts()
        for word in ("newly flooded", "no longer flooded", "added", "removed"):
            if word in ("newly flooded", "no longer flooded") or counts.get(word, 0):
                s[f"{what}_{word.replace(' ', '_')}"] = int(counts.get(word, 0))
    return Comparison("flood", ka, kb, s, tables, {"max_depth_diff": diff})


def _traffic(twin, ka, kb, sa, sb) -> Comparison:
    from twin_core.adapters.traffic import compare_traffic_runs

    layer, summary = compare_traffic_runs(twin, ka, kb)
    s = {k: v for k, v in summary.items() if k not in ("a", "b")}
    d = layer["diff"].to_numpy(float)
    col = "flow" if "flow_a" in layer.columns else "vehicles"
    # more / less as the summary's links_more / links_less count them; a road only one run has is added/removed
    layer["change"] = np.where(layer[f"{col}_b"].isna(), "removed", np.where(
        layer[f"{col}_a"].isna(), "added", np.where(d > 1e-6, "more", np.where(d < -1e-6, "less", "same"))))
    layer = layer.sort_values("diff", key=lambda c: -c.abs(), kind="stable").reset_index(drop=True)  # most changed first
    return Comparison("traffic", ka, kb, s, {"link_changes": layer})


def _access(twin, ka, kb, sa, sb) -> Comparison:
    ta, tb = twin.load_result(*ka, "access_buildings"), twin.load_result(*kb, "access_buildings")
    t = pd.merge(ta[["building_id", "time_s", "within"]], tb[["building_id", "time_s", "within"]], on="building_id",
                 how="outer", suffixes=("_a", "_b"), indicator=True)
    only = t.pop("_merge").astype(str).to_numpy()  # every building of its scenario is in a run's table
    wa = t["within_a"].astype("boolean").fillna(False).to_numpy(bool)
    wb = t["within_b"].astype("boolean").fillna(False).to_numpy(bool)
    dt = (t["time_s_b"] - t["time_s_a"]).to_numpy(float)
    t["time_change_s"] = dt
    t["change"] = np.where(wb & ~wa, "now within reach", np.where(wa & ~wb, "out of reach", np.where(
        dt >= SAME_TIME_S, "slower", np.where(dt <= -SAME_TIME_S, "faster", np.where(
            t["time_s_a"].isna() & t["time_s_b"].notna(), "now reached", np.where(
                t["time_s_a"].notna() & t["time_s_b"].isna(), "no longer reached", np.where(
                    t["time_s_a"].isna() & t["time_s_b"].isna(), "reached in neither", "same")))))))
    t.loc[only == "left_only", "change"] = "removed"  # pulled down in B's scenario: not put out of reach
    t.loc[only == "right_only", "change"] = "added"
    order = {"out of reach": 0, "no longer reached": 1, "slower": 2, "now within reach": 3, "now reached": 4,
             "faster": 5, "added": 6, "removed": 7, "same": 8, "reached in neither": 9}
    t = t.sort_values(["change", "time_change_s"], key=lambda c: c.map(order) if c.name == "change" else -c.abs(),
                      kind="stable").reset_index(drop=True)
    s: dict = {"from_kind": sa.get("from_kind"), "within_s": sa.get("within_s")}
    # each run's own counts (its summary's), not the merged table's, where a building only one run has is NaN
    _change(s, "within", sa.get("within", int(ta["within"].sum())), sb.get("within", int(tb["within"].sum())))
    _change(s, "unreachable", sa.get("unreachable", int(ta["time_s"].isna().sum())),
            sb.get("unreachable", int(tb["time_s"].isna().sum())))
    _change(s, "median_time_s", sa.get("median_time_s"), sb.get("median_time_s"))
    counts = t["change"].value_counts()
    s["now_within_reach"] = int(counts.get("now within reach", 0))
    s["out_of_reach"] = int(counts.get("out of reach", 0))
    for word in ("added", "removed"):
        if counts.get(word, 0):
            s[f"buildings_{word}"] = int(counts[word])
    return Comparison("access", ka, kb, s, {"access_buildings_change": t})


def _requested(summary: dict):
    """The people a crowd run was asked for: placed (``agents``) plus those the water cut off."""
    if summary.get("agents_requested") is not None:
        return summary["agents_requested"]
    a = summary.get("agents")
    return None if a is None else a + (summary.get("cut_off_persons") or 0)


def _crowd(twin, ka, kb, sa, sb) -> Comparison:
    s: dict = {"status_a": sa.get("status"), "status_b": sb.get("status")}
    _change(s, "evacuation_time_s", sa.get("evacuation_time_s"), sb.get("evacuation_time_s"))
    _change(s, "agents", sa.get("agents"), sb.get("agents"))
    _change(s, "evacuated", sa.get("evacuated"), sb.get("evacuated"))
    _change(s, "jams", len(sa.get("jams") or []), len(sb.get("jams") or []))
    if "cut_off_persons" in sa or "cut_off_persons" in sb:  # people the water cut off from every exit
        _change(s, "cut_off_persons", sa.get("cut_off_persons", 0), sb.get("cut_off_persons", 0))
        _change(s, "agents_requested", _requested(sa), _requested(sb))
        if sa.get("verdict") or sb.get("verdict"):
            s["verdict_a"], s["verdict_b"] = sa.get("verdict") or sa.get("status"), sb.get("verdict") or sb.get("status")
    if sa.get("agents") != sb.get("agents"):
        # a flood squeezes the crowd onto the dry ground, the cut-off people not simulated: the worse flood then
        # "clears faster" with fewer people (before 2026-12-05 nothing said so)
        s["note"] = (f"the runs placed different numbers of people ({_fmt(sa.get('agents'))} and "
                     f"{_fmt(sb.get('agents'))}"
                     + (f"; cut off by water and not simulated: {_fmt(sa.get('cut_off_persons', 0))} and "
                        f"{_fmt(sb.get('cut_off_persons', 0))}" if "cut_off_persons_a" in s else "")
                     + "): their evacuation times are of different crowds")

    def exits(summary):
        t = pd.DataFrame(summary.get("exits") or [], columns=["exit", "width_m", "agents", "last_s", "flow_per_s"])
        closed = set(summary.get("closed_exits") or [])
        wet = set(summary.get("exits_under_water") or [])
        known = set(summary.get("exit_names") or []) | set(t["exit"]) | closed | wet
        extra = pd.DataFrame({"exit": sorted(known - set(t["exit"]))})  # closed exits are not in the usage list
        t = pd.concat([t, extra], ignore_index=True) if len(extra) else t
        t["state"] = np.where(t["exit"].isin(wet), "under water", np.where(t["exit"].isin(closed), "closed", "open"))
        return t.set_index("exit")

    ea, eb = exits(sa), exits(sb)
    t = pd.merge(ea[["agents", "last_s", "state"]], eb[["agents", "last_s", "state"]], left_index=True,
                 right_index=True, how="outer", suffixes=("_a", "_b"), indicator=True).reset_index()
    only = t.pop("_merge").astype(str).to_numpy()
    t["agents_change"] = t["agents_b"].fillna(0) - t["agents_a"].fillna(0)
    st_a, st_b = t["state_a"].fillna("open").to_numpy(), t["state_b"].fillna("open").to_numpy()
    t["change"] = np.where(only == "left_only", "removed", np.where(only == "right_only", "added", np.where(
        (st_b != "open") & (st_a == "open"), st_b, np.where((st_a != "open") & (st_b == "open"), "opened", np.where(
            t["agents_change"] > 0, "more", np.where(t["agents_change"] < 0, "fewer", "same"))))))
    t = t.sort_values("agents_change", key=lambda c: -c.abs(), kind="stable").reset_index(drop=True)
    return Comparison("crowd", ka, kb, s, {"exit_changes": t})


def _raster_analysis(name: str, result: str, unit: str):
    def compare(twin, ka, kb, sa, sb) -> Comparison:
        da, db, diff = _raster_diff(twin, ka, kb, result, unit, what="the same bounds and spacing")
        both = np.isfinite(da) & np.isfinite(db)  # a new building's footprint holds no value in B: counted apart
        d = (db - da)[both]
        res = abs(diff.transform.a * diff.transform.e)
        s = {"cells": int(d.size), "less_m2": float((d < 0).sum() * res), "more_m2": float((d > 0).sum() * res),
             "no_value_in_b_m2": float((np.isfinite(da) & ~np.isfinite(db)).sum() * res),
             "no_value_in_a_m2": float((~np.isfinite(da) & np.isfinite(db)).sum() * res)}
        _change(s, f"mean_{result}", float(da[both].mean()) if both.any() else None,
                float(db[both].mean()) if both.any() else None)
        s["largest_loss"] = float(-d.min()) if d.size and d.min() < 0 else 0.0
        return Comparison(name, ka, kb, s, {}, {f"{result}_diff": diff})

    return compare


_COMPARE = {"flood": _flood, "traffic": _traffic, "access": _access, "crowd": _crowd,
            "sunlight": _raster_analysis("sunlight", "sunlight_hours", "h"),
            "viewshed": _raster_analysis("viewshed", "viewshed", "1")}

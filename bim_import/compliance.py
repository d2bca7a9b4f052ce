"""Compliance checks of a submitted IFC model against the plot's planning rules.

A rule set (YAML) names the limits and the plot::

    rules:
      max_height_m: 24          # roof top above the 0.00 level
      min_setback_m: 3          # footprint to parcel boundary
      max_far: 2.5              # gross floor area / parcel area
      max_site_coverage: 0.4    # footprint area / parcel area
      min_green_ratio: 0.3      # IfcGeographicElement area on the parcel / parcel area
    ids: required.ids           # optional information requirements (ifctester), relative to this file
    parcel:                     # the plot, in the twin CRS ...
      polygon: [[x, y], ...]
    # ... or parcel: {parcel_id: P-0012} / nothing, with a store: the CIM parcel the model stands on
    crs: EPSG:4544
    anchor: [x, y, z, rotation_deg]   # optional: where to put a model without georeference (twin CRS);
                                      # without z ([x, y]) its 0.00 level stands on the twin's DEM there

When the parcel comes from a store, its fields (``max_height_m``, ``min_setback_m``, ``max_far``,
``max_coverage``, ``min_green_ratio``) are limits too. Where the parcel and the rules file both name a
limit, the stricter applies (:func:`merge_limits`: the smaller of a ``max_`` rule, the larger of a ``min_``
one), so a rules file never loosens the plot's own zoning; each result says where its limit came from
(:attr:`RuleResult.limit_source`).

Examples
--------
>>> rs = RuleSet.from_dict({"rules": {"max_height_m": 24, "max_far": 2.0}})
>>> sorted(rs.limits.items())
[('max_far', 2.0), ('max_height_m', 24.0)]
>>> RuleSet.from_dict({"rules": {"max_heigth_m": 24}})
Traceback (most recent call last):
...
twin_core.errors.RuleError: unknown rule 'max_heigth_m'; the rules are ['max_height_m', 'min_setback_m', 'max_far', 'max_site_coverage', 'min_green_ratio', 'min_neighbour_sunlight_h', 'min_fire_separation_m'] (did you mean 'max_height_m'?)

``min_neighbour_sunlight_h`` (hours; GB 50180-2018 4.0.9: 2) needs the city: the sun left on the surrounding
homes' ground-floor window sills on the Major Cold day, with the building against without it. It is checked
with the twin (``twin check-bim --store``, ``Twin.check_bim``, the map), which passes its evaluator.

``min_fire_separation_m`` needs the city's buildings too (a store): the distance from the footprint to each
neighbouring building of the CIM, the worst margin shown. The buildings the model replaces are left out: those
with half or more of their own area on the footprint (:func:`bim_import.building.replaced_buildings`, the same
decision as the neighbours' sunlight); one that touches the footprint or overlaps it a little is a neighbour at
0 m, and fails. Give a number (metres, the same for every neighbour) or ``GB50016``: the fire separation of
civil buildings of GB 50016-2014 (2018 ed.) table 5.2.2 for fire-resistance grades I and II, pair by pair: 6 m,
9 m where one of the two is high-rise, 13 m where both are. High-rise (art. 2.1.1, :func:`high_rise`): homes
over 27 m; other buildings over 24 m with 2 storeys or more (a single-storey hall is not). The model's use comes
from ``use:``, else the stricter 24 m; an unknown height or number of storeys (the model's, or a CIM building's
``height_m`` / ``storeys``) is taken as high-rise, and the note says so. The model's height is to its roof top,
where appendix A of the standard leaves out parapets and small rooftop rooms, so near 24 m / 27 m the test errs
strict. Table 5.2.2 does not cover factories: a pair with an industrial building (the model's ``use:`` or a CIM
``use``) within 50 m is not passed, and the note names the neighbours to check by table 3.4.1 (at least 10 m
from a grade I/II class 丙/丁/戊 factory to a low-rise civil building, more otherwise). A fire wall facing a
neighbour, which the table's notes allow closer, is not taken into account::

    rules:
      min_fire_separation_m: GB50016
    use: residential
"""

from __future__ import annotations

import difflib
import functools
import json
import math
import os
import re
from dataclasses import dataclass, field
import numpy as np

from twin_core.errors import RuleError

__all__ = ["RULES", "CITY_RULES", "NEIGHBOUR_RULES", "RuleSet", "RuleResult", "ComplianceReport", "check_compliance",
           "load_rules", "high_rise", "place_anchor", "merge_limits"]

#: rule -> (description, unit, parcel field, kind)
RULES: dict[str, tuple[str, str, str, str]] = {
    "max_height_m": ("building height above the 0.00 level", "m", "max_height_m", "max"),
    "min_setback_m": ("distance from the footprint to the parcel boundary", "m", "min_setback_m", "min"),
    "max_far": ("floor-area ratio (gross floor area / parcel area)", "1", "max_far", "max"),
    "max_site_coverage": ("site coverage (footprint area / parcel area)", "1", "max_coverage", "max"),
    "min_green_ratio": ("green ratio (green area / parcel area)", "1", "min_green_ratio", "min"),
    # needs the city (the neighbours' windows): checked by the evaluator the twin passes (``evaluators=``)
    "min_neighbour_sunlight_h": ("sun left on the neighbouring homes' ground-floor window sills on the Major Cold "
                                 "day (大寒日), 08:00-16:00 true solar time, where they had it (GB 50180-2018 4.0.9)",
                                 "h", "min_neighbour_sunlight_h", "min"),
    # needs the city's buildings (a store)
    "min_fire_separation_m": ("fire separation: footprint to each neighbouring building of the CIM; the worst "
                              "margin shown (防火间距, GB 50016-2014 5.2.2)", "m", "min_fire_separation_m", "min"),
}
#: rules a store alone cannot check: they need an evaluator from the twin (twin_core.adapters.analysis)
CITY_RULES = ("min_neighbour_sunlight_h",)
#: rules measured against the CIM's other buildings (the store), not on the parcel alone
NEIGHBOUR_RULES = ("min_fire_separation_m",)
#: rules whose limit may name a standard's table instead of a number: rule -> {name: what it means}
TABLES = {"min_fire_separation_m": {"GB50016": "GB 50016-2014 (2018 ed.) table 5.2.2, fire-resistance grades I/II: "
                                                "6 m, 9 m with one high-rise, 13 m between two high-rise"}}
#: GB 50016-2014 table 5.2.2 (grades I/II): (neither high-rise, one, both) -> metres
GB50016_SEPARATION_M = (6.0, 9.0, 13.0)
#: GB 50016-2014 art. 2.1.1: a building is high-rise above this height (m): homes 27, other buildings 24 (and
#: those only with 2 storeys or more): :func:`high_rise`
HIGH_RISE_M = {"residential": 27.0}
HIGH_RISE_OTHER_M = 24.0
#: GB 50016-2014 table 3.4.1 (factories), which table 5.2.2 does not cover: its least separation from a civil
#: building (a grade I/II class 丙/丁/戊 factory to a low-rise one), a lower bound for a pair with a factory
GB50016_FACTORY_MIN_M = 10.0
#: ... and its largest (a class 甲/乙 factory to a key public building): industrial buildings this near are named
GB50016_FACTORY_REACH_M = 50.0
_TOP_KEYS = ("rules", "ids", "parcel", "crs", "anchor", "name", "use")


@dataclass
class RuleSet:
    limits: dict[str, float] = field(default_factory=dict)
    ids: str | None = None
    parcel: dict | None = None
    crs: str | None = None
    name: str = "rules"
    anchor: object | None = None  # bim_import.georef.Anchor for a model without georeference
    #: rule -> the standard's table its limit names (:data:`TABLES`), e.g. min_fire_separation_m: GB50016
    tables: dict[str, str] = field(default_factory=dict)
    #: the model's use (one of cim.schema.BUILDING_USES), where a rule depends on it (high-rise: 27 m for homes)
    use: str | None = None
    #: an IDS file on its own (:func:`load_rules`): information requirements only, so nothing is measured on a
    #: parcel or against the city even with a store (a rules file naming only ``ids:`` takes, with a store, the
    #: CIM parcel's limits too)
    ids_only: bool = False
    #: the IDS already read (an ifctester ``Ids`` from :func:`read_ids`): checked as it is, not read again from
    #: ``ids``, which then only names it (the map's upload, read once when it arrives)
    ids_spec: object | None = None
    #: check the IDS in a child process held to these limits (:class:`IdsLimits`, :func:`run_limited`), not in this
    #: one: an uploaded IDS's xs:pattern is a regular expression its sender wrote (the map server passes
    #: :data:`UPLOAD_IDS_LIMITS`); None: in this process, as the CLI checks a local user's own file
    ids_limits: "IdsLimits | None" = None

    def model_alone(self, *, with_store: bool) -> bool:
        """Whether the rule set checks the model alone: information requirements (IDS) only, nothing measured on
        a parcel or against the city, so the model need not be placed. An IDS file on its own (``ids_only``)
        always; a rules file naming only ``ids:`` only without a store (``with_store`` False): with one it takes
        the limits of the CIM parcel the model stands on. :func:`check_compliance` and
        :func:`bim_import.checks.record_check` both decide by it.

        >>> ids = RuleSet(ids="x.ids", ids_only=True)
        >>> ids.model_alone(with_store=True), RuleSet(ids="x.ids").model_alone(with_store=True)
        (True, False)
        >>> RuleSet(ids="x.ids").model_alone(with_store=False), RuleSet({"max_far": 2.0}).model_alone(with_store=False)
        (True, False)
        """
        return bool(self.ids is not None and not self.limits and self.parcel is None
                    and (self.ids_only or not with_store))

    @classmethod
    def from_dict(cls, d: dict, base_dir: str | None = None) -> "RuleSet":
        if not isinstance(d, dict):
            raise RuleError("a rules file must be a mapping with a 'rules:' section; see bim_import.compliance")
        unknown_top = [k for k in d if k not in _TOP_KEYS and k not in RULES]
        if unknown_top:
            raise RuleError(_unknown(unknown_top[0], list(_TOP_KEYS) + list(RULES), what="key"))
        section = d.get("rules") or {}
        if not isinstance(section, dict):
            raise RuleError(f"'rules:' must be a mapping of rule name to limit (e.g. 'max_height_m: 54'), "
                            f"got {type(section).__name__} {section!r}"[:300])
        for key, kinds in (("crs", (str,)), ("name", (str,)), ("ids", (str,))):
            if d.get(key) is not None and not isinstance(d[key], kinds):
                raise RuleError(f"'{key}:' must be a string, got {d[key]!r}"[:300])
        rules = dict(section)
        rules.update({k: v for k, v in d.items() if k in RULES})
        limits, tables = {}, {}
        for k, v in rules.items():
            if k not in RULES:
                raise RuleError(_unknown(k, list(RULES)))
            if isinstance(v, str) and k in TABLES:
                key = next((t for t in TABLES[k] if t.replace(" ", "").upper() == v.replace(" ", "").upper()), None)
                if key is None:
                    raise RuleError(f"rule {k!r}: the limit must be a number or one of {sorted(TABLES[k])}, got {v!r}")
                tables[k], limits[k] = key, GB50016_SEPARATION_M[0]
                continue
            try:
                if isinstance(v, bool):
                    raise TypeError
                fv = float(v)
            except (TypeError, ValueError):
                raise RuleError(f"rule {k!r}: the limit must be a number, got {v!r}") from None
            if not math.isfinite(fv) or fv < 0:
                raise RuleError(f"rule {k!r}: the limit must be a finite number >= 0, got {v!r}")
            limits[k] = fv
        ids = d.get("ids")
        if ids is not None and base_dir is not None and not os.path.isabs(ids):
            ids = os.path.join(base_dir, ids)
        if ids is not None and not os.path.isfile(ids):
            raise RuleError(f"the IDS file {ids!r} named by 'ids:' does not exist; fix the path (relative to the rules file)")
        parcel = d.get("parcel")
        if parcel is not None and not isinstance(parcel, dict):
            raise RuleError("'parcel:' must be a mapping with 'polygon: [[x, y], ...]' or 'parcel_id: ...'")
        if parcel is not None and not ({"polygon", "parcel_id", "wkt"} & set(parcel)):
            raise RuleError("'parcel:' needs 'polygon: [[x, y], ...]', 'wkt: ...' or 'parcel_id: ...'")
        use = d.get("use")
        if use is not None:
            from cim.schema import BUILDING_USES

            if use not in BUILDING_USES:
                raise RuleError(f"'use:' must be one of {list(BUILDING_USES)}, got {use!r}"[:300])
        return cls(limits, ids, parcel, d.get("crs"), str(d.get("name", "rules")), _anchor(d.get("anchor")), tables,
                   use)


def _anchor(v, what: str = "'anchor:'", error=RuleError):
    """``anchor: [x, y, z, rotation_deg]`` (z and rotation optional) or a mapping of those names, as an
    :class:`~bim_import.georef.Anchor` (one already is kept); ``error`` (named ``what``) for anything else."""
    from bim_import.georef import Anchor

    if v is None or isinstance(v, Anchor):
        return v
    try:
        if isinstance(v, dict):
            unknown = set(v) - {"x", "y", "z", "rotation_deg", "crs"}
            if unknown:
                raise TypeError(f"unknown keys {sorted(unknown)}")
            vals = {k: (x if k == "crs" else float(x)) for k, x in v.items() if x is not None}
            a = Anchor(**vals)
        elif isinstance(v, (list, tuple)) and 2 <= len(v) <= 4 and not any(isinstance(x, bool) for x in v):
            a = Anchor(*(float(x) for x in v))
        else:
            raise TypeError("not 2 to 4 numbers")
    except (TypeError, ValueError) as exc:
        raise error(f"{what} must be [x, y, z, rotation_deg] numbers in the twin CRS (z and rotation "
                    f"optional) or a mapping of those, got {v!r} ({exc})"[:400]) from None
    if not all(math.isfinite(x) for x in (a.x, a.y, a.z, a.rotation_deg)):
        raise error(f"{what} values must be finite numbers, got {v!r}")
    return a


def place_anchor(store, anchor, crs: str | None = None):
    """``(anchor, anchor_z)``: where a compliance check puts a model by its anchor, and where the anchor's
    height came from, as ``twin bim import`` places one (:func:`bim_import.importer._ground_anchor`).

    ``anchor``: an :class:`~bim_import.georef.Anchor`, ``(x, y[, z[, rotation_deg]])`` or a mapping of those
    (a rules file's ``anchor:``, ``Twin.check_bim(anchor=...)``, ``twin check-bim --anchor``), in ``crs`` unless
    it names its own. Without a height (x, y) the model's 0.00 level stands on the ground: the store's ``dem``
    at x, y (``anchor_z["source"] == "dem"``); where the twin has no DEM or it does not cover x, y, at 0
    (``"default"``, with a warning off the DEM); a given height is kept (``"anchor"``). ``anchor_z`` is None
    without an anchor.
    """
    from bim_import.georef import Anchor
    from bim_import.importer import _ground_anchor
    from cim.crs import same_crs
    from twin_core.errors import GeoreferenceError

    anchor = _anchor(anchor, "anchor", GeoreferenceError)
    if anchor is None:
        return None, None
    scrs = getattr(store, "crs", None) if store is not None else None
    if anchor.crs is None and crs is not None and scrs and not same_crs(crs, scrs):
        # x, y are in the check's CRS, the DEM in the store's: name the CRS so the ground is looked up at x, y
        anchor = Anchor(anchor.x, anchor.y, anchor.z if anchor.z_given else None, anchor.rotation_deg, crs)
    return _ground_anchor(store, anchor)


def _unknown(k: str, allowed: list[str], what: str = "rule") -> str:
    near = difflib.get_close_matches(str(k), allowed, n=1)
    hint = f" (did you mean {near[0]!r}?)" if near else ""
    return f"unknown {what} {k!r}; the {what}s are {allowed}{hint}"


def _is_ids(path: str) -> bool:
    """An IDS (buildingSMART Information Delivery Specification) file: ``.ids``, or XML whose root is ``<ids``."""
    if path.lower().endswith(".ids"):
        return True
    with open(path, "rb") as fh:
        head = fh.read(4096).lstrip(b"\xef\xbb\xbf \t\r\n")
    if not head.startswith(b"<"):
        return False
    import re

    body = re.sub(rb"<\?.*?\?>|<!--.*?-->", b"", head, flags=re.S).lstrip()  # XML declaration, comments
    return re.match(rb"<(\w+:)?ids[\s>]", body) is not None


def load_rules(path: str | os.PathLike) -> RuleSet:
    """Read a YAML (or JSON) rules file, or an IDS file on its own; RuleError for anything malformed.

    An IDS file (``.ids``, or XML with an ``<ids>`` root) gives a rule set of its information requirements only
    (``ids_only``): it needs no parcel and, given a store, measures nothing on the city either (a rules YAML names
    one with ``ids: file.ids`` beside its limits).
    """
    import yaml

    p = os.fspath(path)
    if not os.path.isfile(p):
        raise RuleError(f"rules file {p!r} does not exist")
    if _is_ids(p):  # an IDS file on its own: its information requirements are the rules (no parcel needed)
        return RuleSet(ids=os.path.abspath(p), name=os.path.splitext(os.path.basename(p))[0], ids_only=True)
    try:
        with open(p, encoding="utf-8") as fh:
            d = read_rules_yaml(fh)
    except yaml.YAMLError as exc:
        raise RuleError(f"rules file {p!r} is not valid YAML: {exc}") from None
    except UnicodeDecodeError as exc:
        raise RuleError(f"rules file {p!r} is not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset "
                        f"{exc.start}); save it as UTF-8, e.g. iconv -f GBK -t UTF-8 rules.yaml > utf8.yaml") from None
    return RuleSet.from_dict(d, base_dir=os.path.dirname(os.path.abspath(p)))


@dataclass
class RuleResult:
    rule: str
    description: str
    measured: float | None
    limit: float | None
    unit: str
    passed: bool
    offending: list[str] = field(default_factory=list)
    note: str = ""
    #: where the limit came from (:func:`merge_limits`): ``"rules file"``, ``"parcel P00001"``, or both with the
    #: stricter applied (``"parcel P00001: 0.35; rules file: 0.4; applied 0.35 (stricter)"``); "" for an IDS
    #: requirement and in a report recorded before the source was kept
    limit_source: str = ""

    def reading(self) -> str:
        """The result in words, for a report line: ``6.318 m (limit 24.0 m)``; an IDS requirement
        ``1 of 5 elements complies`` (its measured value counts the applicable elements that comply, its
        limit the applicable elements).

        >>> [RuleResult("ids:x", "", n, of, "elements", True).reading() for n, of in ((1, 1), (1, 5), (2, 5), (0, 0))]
        ['1 of 1 element complies', '1 of 5 elements complies', '2 of 5 elements comply', 'no applicable element']
        """
        if self.unit == "elements" and self.limit is not None and self.measured is not None:
            n, of = int(self.measured), int(self.limit)
            return "no applicable element" if of == 0 else f"{_of(n, of)} {'complies' if n == 1 else 'comply'}"
        m = "-" if self.measured is None else f"{self.measured:.3f}"
        return f"{m} (limit {self.limit}{self.unit_suffix()})"

    def unit_suffix(self) -> str:
        """The unit as printed after a number: ``" m"``, ``" h"``; nothing for a ratio (unit ``"1"``).

        >>> [RuleResult("r", "", 0.035, 2.5, unit, True).unit_suffix() for unit in ("1", "m")]
        ['', ' m']
        """
        return "" if self.unit in (None, "", "1") else f" {self.unit}"


@dataclass
class ComplianceReport:
    model: str
    building_id: str
    parcel_id: str | None
    results: list[RuleResult]
    crs: str
    #: where the height of the anchor that placed the model came from (:func:`place_anchor`): ``z``, ``source``
    #: (``dem``: the twin's DEM under an anchor given without one; ``anchor``: given; ``default``: 0, no DEM
    #: there) and, but for a given one, ``text``; None where no anchor placed the model
    anchor_z: dict | None = None

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.results)

    @property
    def checked_nothing(self) -> bool:
        """Whether the check checked nothing: every result is an IDS requirement that applied to no element of
        the model. It passes, as IDS 1.0 has it, yet a listing must not read as an approval (``twin bim checks``:
        ``PASS (nothing checked)``).

        >>> ids = RuleResult("ids:x", "", 0.0, 0.0, "elements", True)
        >>> ComplianceReport("m", "b", None, [ids], "EPSG:4544").checked_nothing
        True
        >>> ComplianceReport("m", "b", None, [ids, RuleResult("max_far", "", 0.5, 2.0, "1", True)], "").checked_nothing
        False
        """
        return all(r.unit == "elements" and not r.limit for r in self.results)

    def result(self, rule: str) -> RuleResult:
        for r in self.results:
            if r.rule == rule:
                return r
        raise KeyError(rule)

    def to_dict(self) -> dict:
        return {"model": self.model, "building_id": self.building_id, "parcel_id": self.parcel_id, "crs": self.crs,
                "passed": self.passed, "results": [r.__dict__ for r in self.results], "anchor_z": self.anchor_z}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, default=_json_default)

    @classmethod
    def from_dict(cls, d: dict) -> "ComplianceReport":
        """The report back from :meth:`to_dict` (or its JSON), e.g. a check recorded in the store."""
        return cls(d["model"], d["building_id"], d["parcel_id"], [RuleResult(**r) for r in d["results"]], d["crs"],
                   d.get("anchor_z"))  # a report recorded before the anchor's height was kept has none

    def to_html(self, record: dict | None = None) -> str:
        """The report as one self-contained HTML page (no external resource; every value escaped).

        ``record``: the recorded check (:func:`bim_import.checks.get_check`), whose rule set, time (UTC), checker,
        IFC file with its SHA-256 and placement in the city head the page, as a record of the decision; or a check
        not recorded (:func:`bim_import.checks.check_unrecorded`: ``check_id`` None), the page then saying so.
        """
        import jinja2

        env = jinja2.Environment(autoescape=True)
        return env.from_string(_HTML).render(r=self, rows=self.results, rec=_record_view(record))


def _of(n: int, of: int, what: str = "element") -> str:
    """``1 of 1 element``, ``2 of 5 elements``: the noun agrees with the total."""
    return f"{n} of {of} {what}{'' if of == 1 else 's'}"


def _json_default(o):
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    if isinstance(o, np.bool_):
        return bool(o)
    return str(o)


#: where a recorded check came from, in words (bim_import.checks.record_check's ``source``)
_SOURCES = {"api": "through the map server", "cli": "with twin check-bim --save",
            "cli_unsaved": "with twin check-bim, not saved (no --save)"}


def _record_view(rec: dict | None) -> dict | None:
    """A recorded check's fields as its HTML report shows them."""
    if not rec:
        return None
    from datetime import datetime, timezone

    created = str(rec.get("created") or "")
    try:
        when = datetime.fromisoformat(created).astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    except ValueError:
        when = created
    source = str(rec.get("source") or "")
    placement = rec.get("placement") or {}
    title, name = str(rec.get("ruleset_title") or ""), str(rec.get("ruleset") or "")
    return {"check_id": rec.get("check_id"), "when": when, "filename": rec.get("filename"),
            "sha256": rec.get("sha256"), "size_bytes": rec.get("size_bytes"),
            "ruleset": title + (f" ({name})" if name and name != title else "") if title else name,
            "by": ", ".join(x for x in (str(rec.get("checked_by") or ""), _SOURCES.get(source, source)) if x),
            "placed": placement.get("placed"), "placement": placement.get("text") or "not recorded"}


_HTML = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Compliance report: {{ r.model }}</title>
<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}td,th{border:1px solid #999;padding:4px 8px}
.pass{background:#d9f2d9}.fail{background:#f8d0d0}.warn{background:#fff3c4}code{font-size:90%}
table.record{margin-bottom:1em}table.record th{text-align:left}</style></head><body>
<h1>Compliance report</h1>
{% if rec %}<table class="record">
<tr><th>check</th><td>{% if rec.check_id %}<code>{{ rec.check_id }}</code>{% else %}not recorded (twin check-bim --save --store TWIN records it){% endif %}</td></tr>
<tr><th>rule set</th><td>{{ rec.ruleset }}</td></tr>
<tr><th>checked</th><td>{{ rec.when }}</td></tr>
<tr><th>by</th><td>{{ rec.by }}</td></tr>
<tr><th>IFC file</th><td><code>{{ rec.filename }}</code>, {{ rec.size_bytes }} bytes, SHA-256 <code>{{ rec.sha256 }}</code></td></tr>
<tr{% if rec.placed == false %} class="warn"{% endif %}><th>placed</th><td>{{ rec.placement }}</td></tr>
</table>
{% endif %}<p>Model <code>{{ r.model }}</code>, building <code>{{ r.building_id }}</code>{% if r.parcel_id %}, parcel <code>{{ r.parcel_id }}</code>{% endif %} ({{ r.crs }}).</p>
<p><strong>Overall: {{ "PASS" if r.passed else "FAIL" }}{% if r.passed and r.checked_nothing %} (nothing checked: no requirement applied to an element of the model){% endif %}</strong></p>
<table><tr><th>rule</th><th>what</th><th>measured</th><th>limit</th><th>limit from</th><th>result</th><th>offending elements</th><th>note</th></tr>
{% for x in rows %}<tr class="{{ 'pass' if x.passed else 'fail' }}"><td>{{ x.rule }}</td><td>{{ x.description }}</td>
{% if x.unit == "elements" %}<td colspan="2">{{ x.reading() }}</td>{% else %}
<td>{% if x.measured is not none %}{{ '%.3f' % x.measured }}{{ x.unit_suffix() }}{% else %}-{% endif %}</td>
<td>{% if x.limit is not none %}{{ x.limit }}{{ x.unit_suffix() }}{% else %}-{% endif %}</td>{% endif %}
<td>{{ x.limit_source or "-" }}</td>
<td>{{ "pass" if x.passed else "FAIL" }}</td><td>{% for g in x.offending[:50] %}<code>{{ g }}</code> {% endfor %}{% if x.offending|length > 50 %}... ({{ x.offending|length }}){% endif %}</td>
<td>{{ x.note }}</td></tr>
{% endfor %}</table></body></html>
"""


def merge_limits(parcel_limits: dict, file_limits: dict, parcel_id=None) -> tuple[dict, dict]:
    """``(limits, sources)``: each rule's limit where the CIM parcel and the rules file both name one, the
    stricter of the two (a ``max`` rule of :data:`RULES` the smaller, a ``min`` rule the larger), and where it
    came from in words (``sources[rule]``, :attr:`RuleResult.limit_source`). The rules file never loosens the
    plot's own zoning: a file's ``max_site_coverage: 0.4`` on a parcel zoned 0.35 checks 0.35.

    >>> limits, src = merge_limits({"max_site_coverage": 0.35, "min_setback_m": 4.0},
    ...                            {"max_site_coverage": 0.4, "min_setback_m": 3.0, "max_far": 2.0}, "P00001")
    >>> limits
    {'max_site_coverage': 0.35, 'min_setback_m': 4.0, 'max_far': 2.0}
    >>> src["max_site_coverage"]
    'parcel P00001: 0.35; rules file: 0.4; applied 0.35 (stricter)'
    >>> src["max_far"], merge_limits({"max_far": 1.5}, {"max_far": 1.2}, "P7")[1]["max_far"]
    ('rules file', 'parcel P7: 1.5; rules file: 1.2; applied 1.2 (stricter)')
    """
    parcel = f"parcel {parcel_id}" if parcel_id else "the parcel"
    limits, sources = {}, {}
    for rule in list(parcel_limits) + [r for r in file_limits if r not in parcel_limits]:
        p, f = parcel_limits.get(rule), file_limits.get(rule)
        if p is None or f is None:
            limits[rule] = p if f is None else f
            sources[rule] = parcel if f is None else "rules file"
            continue
        kind = RULES[rule][3]
        lim = min(p, f) if kind == "max" else max(p, f)
        limits[rule] = lim
        sources[rule] = (f"{parcel}: {p:g}; rules file: {f:g}; applied {lim:g}"
                         + (" (both the same)" if p == f else " (stricter)"))
    return limits, sources


def _parcel_geometry(rules: RuleSet, store, footprint, crs):
    """(parcel polygon, parcel_id, parcel limits dict)."""
    import shapely

    p = rules.parcel or {}
    if "polygon" in p or "wkt" in p:
        key = "polygon" if "polygon" in p else "wkt"
        try:
            poly = shapely.Polygon(np.asarray(p["polygon"], dtype=float)) if key == "polygon" else \
                shapely.from_wkt(p["wkt"])
        except Exception as exc:
            form = "[[x, y], ...]" if key == "polygon" else "WKT"
            raise RuleError(f"'parcel: {key}:' cannot be read as a polygon ({form}): {exc}") from None
        if poly is None or poly.geom_type not in ("Polygon", "MultiPolygon") or not poly.is_valid or poly.area <= 0:
            what = "nothing" if poly is None else poly.geom_type
            reason = "" if poly is None or poly.is_valid else f", {shapely.is_valid_reason(poly)}"
            raise RuleError(f"'parcel: {key}:' must be a valid polygon with a positive area in the twin CRS, got "
                            f"{what}{reason}; fix the parcel in the rules file")
        return poly, p.get("parcel_id"), {}
    if store is None:
        raise RuleError("the rules name no parcel polygon: add 'parcel: {polygon: [[x, y], ...]}' or give a store "
                        "(--store city.gpkg) to take the CIM parcel the model stands on")
    if not store.has_layer("parcels"):
        raise RuleError(f"the store {store.uri} has no 'parcels' layer; name the parcel polygon in the rules file")
    # the store's parcels are in the store's CRS; the model is placed in ``crs``
    from pyproj import Transformer

    from cim.crs import same_crs

    store_crs = getattr(store, "crs", None)
    to_store = None
    if not same_crs(store_crs, crs):
        to_store = Transformer.from_crs(crs, store_crs, always_xy=True)
    if "parcel_id" in p:
        gdf = store.read_layer("parcels", where={"parcel_id": str(p["parcel_id"])})
        if not len(gdf):
            raise RuleError(f"no parcel {p['parcel_id']!r} in {store.uri}")
    else:
        if footprint.is_empty:
            raise RuleError("the model has no footprint, so the parcel it stands on cannot be found; name the parcel")
        c = footprint.representative_point()
        if to_store is not None:
            c = shapely.Point(to_store.transform(c.x, c.y))
        gdf = store.read_layer("parcels", bbox=(c.x - 1, c.y - 1, c.x + 1, c.y + 1))
        gdf = gdf[gdf.geometry.contains(c)]
        if not len(gdf):
            raise RuleError(f"the model (at {c.x:.1f}, {c.y:.1f} in {store_crs or crs}) stands on no parcel of "
                            f"{store.uri}; check its georeference or name the parcel in the rules file")
    if to_store is not None:
        gdf = gdf.to_crs(crs)
    row = gdf.iloc[0]
    if row.geometry is None or row.geometry.is_empty or not row.geometry.area > 0:
        raise RuleError(f"parcel {row['parcel_id']!r} of {store.uri} has no area; fix its geometry in the city model "
                        "or name the parcel polygon in the rules file")
    limits = {}
    for rule, (_, _, fieldname, _) in RULES.items():
        v = row.get(fieldname)
        if v is not None and not (isinstance(v, float) and math.isnan(v)):
            limits[rule] = float(v)
    return row.geometry, str(row["parcel_id"]), limits


def check_compliance(model_or_path, rules, *, store=None, twin_crs: str | None = None, anchor=None,
                     building=None, evaluators: dict | None = None) -> ComplianceReport:
    """Check a model against a rule set.

    Parameters
    ----------
    model_or_path : BimModel or path
    rules : RuleSet, dict or path to a YAML file
    store : Store, optional
        For the CIM parcel the model stands on (and its limits), and the city's buildings
        (``min_fire_separation_m``; the evaluators' rules). Not read for an IDS file on its own.
    twin_crs : str, optional
        Default: the rules' ``crs``, the store's CRS, else EPSG:4544.
    anchor : Anchor or (x, y[, z[, rotation_deg]]), optional
        Where to put a model without (usable) georeference; default the rules' ``anchor:``. Without a height
        (x, y) the model's 0.00 level stands on the store's DEM at x, y (0 where the twin has none there), as
        ``twin bim import --anchor X,Y`` places it (:func:`place_anchor`); ``report.anchor_z`` says which.
    building : Building, optional
        From :func:`bim_import.importer.prepare_building` on the same file:
        its footprint and model are reused instead of reading the file again.
    evaluators : dict, optional
        rule -> callable for the rules that need the city (:data:`CITY_RULES`): the twin passes
        ``twin_core.adapters.analysis.COMPLIANCE_EVALUATORS`` (``Twin.check_bim``, ``twin check-bim --store``,
        the map). Without one such a rule fails with the reason.

    Returns
    -------
    ComplianceReport
        ``report.passed``; ``report.results`` with measured, limit, pass/fail and offending GlobalIds.
    """
    import shapely

    from bim_import.building import _default_building_id, build_building
    from bim_import.geometry import affine_geom, project_union
    from bim_import.georef import georeference
    from bim_import.model import BimModel, read_model

    rs = rules if isinstance(rules, RuleSet) else (RuleSet.from_dict(rules) if isinstance(rules, dict)
                                                    else load_rules(rules))
    if isinstance(model_or_path, BimModel):
        model = model_or_path
    elif building is not None and isinstance(getattr(building, "model", None), BimModel) and \
            os.path.abspath(building.model.path) == os.path.abspath(os.fspath(model_or_path)):
        model = building.model  # prepared from the same file: do not run the geometry again
    else:
        model = read_model(model_or_path)
    crs = twin_crs or rs.crs or (store.crs if store is not None else None) or "EPSG:4544"
    if rs.model_alone(with_store=store is not None):
        # information requirements only: nothing is measured on a parcel or against the city, so the model need
        # not be placed (a model georeferenced elsewhere is checked as it is, without --crs or --anchor), and an
        # IDS file's store, the twin's that Twin.check_bim and check-bim --store pass, is not read
        bid = building.building_id if building is not None else \
            _default_building_id((model.building or model.project).get("global_id"))
        return ComplianceReport(os.path.basename(model.path), bid, None, _check_ids(model.path, rs), crs)
    anchor = anchor if anchor is not None else rs.anchor
    if building is not None and getattr(building, "georef", None) is not None and str(building.georef.crs) == str(crs):
        g = building.georef  # placed already (its warnings said once; check-bim --save printed them twice)
        # where its anchor's height came from, as place_anchor noted it (bim_import.checks, import_ifc)
        anchor_z = (building.summary or {}).get("anchor_z") if g.method == "anchor" else None
    else:
        # an anchor without a height stands on the twin's ground (the DEM), as twin bim import puts it; it stood
        # at height 0 (sea level), while twin check-bim --anchor X,Y put it on the ground
        anchor, anchor_z = place_anchor(store, anchor, crs)
        g = georeference(model, crs, anchor=anchor)
        anchor_z = anchor_z if g.method == "anchor" else None  # the model's own georeference placed it
    b = building or build_building(model, g, meshes=False)
    if anchor_z is not None and b.georef.method == "anchor":
        b.summary.setdefault("anchor_z", anchor_z)  # for the evaluators (the neighbours' sun: the placed height)
    parcel, parcel_id, parcel_limits = _parcel_geometry(rs, store, b.footprint, crs)
    # the stricter of the plot's zoning and the rules file, rule by rule: a file never loosens the parcel's limits
    limits, limit_sources = merge_limits(parcel_limits, rs.limits, parcel_id)
    if not limits and rs.ids is None:
        raise RuleError("no rule to check: name limits under 'rules:' (e.g. max_height_m: 24) or an 'ids:' file")
    area = parcel.area
    fp = b.footprint
    phys = [x for x in model.element_ids(physical=True) if x in model.meshes]

    def hull(gid):
        tri = model.meshes[gid].triangles
        return shapely.MultiPoint(g.apply(tri.reshape(-1, 3))[:, :2]).convex_hull

    results = []
    for rule in RULES:
        if rule not in limits:
            continue
        desc, unit, _, kind = RULES[rule]
        lim = limits[rule]
        offending: list[str] = []
        note = ""
        if rule in CITY_RULES:
            ev = (evaluators or {}).get(rule)
            if ev is None or store is None:
                results.append(RuleResult(rule, desc, None, lim, unit, False, [], (
                    "needs the city model (the neighbours' windows): check with the twin (twin check-bim "
                    "--store city.gpkg, Twin.check_bim, or the map)")))
            else:
                results.append(ev(model=model, georef=g, building=b, store=store, limit=lim, crs=crs))
            continue
        if rule in NEIGHBOUR_RULES:
            # a rules file naming a standard's table (GB50016): the parcel's own number, where it has one, is the
            # least separation for every neighbour, the table's the more where it asks more
            floor = parcel_limits.get(rule) if rule in rs.tables else None
            results.append(_fire_separation(rule, lim, rs, store, b, crs, floor=floor))
            continue
        if rule == "max_height_m":
            measured = float(b.height_m) if math.isfinite(b.height_m) else None
            note = "" if measured is not None else "no element produced geometry, so the height is unknown"
            offending = [x for x in phys if model.meshes[x].vertices[:, 2].max() > lim + 1e-9]
        elif rule == "min_setback_m":
            boundary = parcel.boundary
            if fp.is_empty:
                measured, note = None, "no footprint"
            elif parcel.buffer(1e-6).contains(fp):
                measured = float(boundary.distance(fp))
            else:
                outside = fp.difference(parcel)
                measured = -float(max(parcel.distance(shapely.Point(xy)) for poly in
                                      getattr(outside, "geoms", [outside]) for xy in poly.exterior.coords))
                note = "the footprint reaches outside the parcel"
            offending = [x for x in phys if (h := hull(x)).distance(boundary) < lim - 1e-9 or not parcel.contains(h)]
        elif rule == "max_far":
            measured = None if b.gfa_m2 is None else b.gfa_m2 / area
            note = f"GFA {b.gfa_m2:.2f} m2 from {b.gfa_source}, parcel {area:.2f} m2" if b.gfa_m2 is not None else \
                "no gross floor area (no storey quantities, no floor slabs)"
        elif rule == "max_site_coverage":
            if fp.is_empty:
                measured, note = None, "no footprint"
            else:
                measured = float(fp.area / area)
                note = f"footprint {fp.area:.2f} m2, parcel {area:.2f} m2"
        else:  # min_green_ratio
            green_ids = model.element_ids(("IfcGeographicElement",))
            green = affine_geom(project_union(model.all_triangles(green_ids)), g) if green_ids else shapely.Polygon()
            green = green.intersection(parcel).difference(fp) if not green.is_empty else green
            measured = float(green.area / area)
            note = f"green {green.area:.2f} m2 (IfcGeographicElement on the parcel, outside the footprint)"
        if measured is None:
            passed = False
        else:
            passed = measured <= lim + 1e-9 if kind == "max" else measured >= lim - 1e-9
        if not passed and not offending and rule in ("max_far", "max_site_coverage", "min_green_ratio"):
            offending = [(model.building or model.project).get("global_id")]
        results.append(RuleResult(rule, desc, measured, lim, unit, bool(passed), offending if not passed else [], note))
    for r in results:  # where each limit came from (the evaluators' results too)
        r.limit_source = limit_sources.get(r.rule, "")
        if r.rule in rs.tables:
            src = f"rules file: {rs.tables[r.rule]} (table, by the pair of buildings)"
            r.limit_source = src if r.rule not in parcel_limits else (
                f"{'parcel ' + str(parcel_id) if parcel_id else 'the parcel'}: {parcel_limits[r.rule]:g}; {src}; "
                "applied the larger for each neighbour (stricter)")

    if rs.ids:
        results.extend(_check_ids(model.path, rs))
    return ComplianceReport(os.path.basename(model.path), b.building_id, parcel_id, results, crs, anchor_z)


def _floats(df, col: str) -> np.ndarray:
    """A column as float64, NaN where missing, unreadable or absent (a CIM ``storeys`` of Int64 with nulls)."""
    import pandas as pd

    if col not in df.columns:
        return np.full(len(df), np.nan)
    return pd.to_numeric(df[col], errors="coerce").astype("Float64").to_numpy(float, na_value=np.nan)


def high_rise(height_m, storeys, use) -> tuple[bool, str]:
    """Whether a building is high-rise by GB 50016-2014 art. 2.1.1, and what was assumed for want of data.

    High-rise: homes (``use`` residential) over 27 m; any other building over 24 m with 2 storeys or more (a
    single-storey hall of 30 m is not). Unknown data is taken the stricter way, and said (the second value,
    ``""`` where nothing was assumed): an unknown height is high-rise, unknown storeys count as 2 or more, and
    a single-storey building over 27 m of unknown use may be homes.

    Examples
    --------
    >>> high_rise(30.0, 1, "industrial"), high_rise(30.0, 1, "residential"), high_rise(25.0, 8, "residential")
    ((False, ''), (True, ''), (False, ''))
    >>> high_rise(float("nan"), 3, "office"), high_rise(25.0, None, "office")
    ((True, 'height unknown'), (True, 'storeys unknown'))
    """
    h = float(height_m) if height_m is not None else math.nan
    if not math.isfinite(h):
        return True, "height unknown"
    if use == "residential":
        return h > HIGH_RISE_M["residential"], ""
    if h <= HIGH_RISE_OTHER_M:
        return False, ""
    n = float(storeys) if storeys is not None else math.nan
    if not math.isfinite(n):
        return True, "storeys unknown"
    if n != 1:
        return True, ""
    if use is None and h > HIGH_RISE_M["residential"]:  # a single storey, but homes over 27 m are high-rise
        return True, "use unknown"
    return False, ""


def _names(ids, n: int = 5) -> str:
    ids = list(ids)
    return ", ".join(ids[:n]) + (f" and {len(ids) - n} more" if len(ids) > n else "")


def _fire_separation(rule: str, limit: float, rs: RuleSet, store, b, crs, floor: float | None = None) -> RuleResult:
    """``min_fire_separation_m``: the footprint against every CIM building near it (see the module's notes).
    ``floor``: with a table (GB50016), the least separation for every pair all the same (the parcel's number)."""
    import shapely

    from bim_import.building import replaced_buildings
    from cim.crs import same_crs

    desc, unit, _, _ = RULES[rule]
    table = rs.tables.get(rule)

    def result(measured, lim, passed, offending=(), note=""):
        return RuleResult(rule, desc, measured, lim, unit, passed, list(offending), note)

    if store is None or not store.has_layer("buildings"):
        return result(None, limit, False, (), "needs the city model's buildings: check with the twin (twin check-bim "
                      "--store city.gpkg, Twin.check_bim, or the map)")
    fp = b.footprint
    if fp.is_empty:
        return result(None, limit, False, (), "no footprint")
    # by the table, factories are looked for as far as table 3.4.1 reaches (table 5.2.2 asks 13 m at most)
    reach = max(GB50016_FACTORY_REACH_M if table else limit, floor or 0.0) + 1.0
    x0, y0, x1, y1 = fp.bounds
    store_crs = getattr(store, "crs", None)
    near = store.read_layer("buildings", bbox=(x0 - reach, y0 - reach, x1 + reach, y1 + reach))
    if len(near) and not same_crs(store_crs, crs):
        raise RuleError(f"the model is placed in {crs} and the city's buildings are in {store_crs}: check it in "
                        "the twin's CRS (leave out --crs)")
    near = near[near["building_id"].astype(str) != str(b.building_id)]  # the model's own, imported before
    near = near[~(near.geometry.isna() | near.geometry.is_empty).to_numpy()] if len(near) else near
    replaced = replaced_buildings(near, fp)
    notes = []
    if replaced.any():  # half or more of it on the footprint: the building the model replaces, not a neighbour
        notes.append(f"{int(replaced.sum())} CIM building(s) half or more on the footprint left out as the ones it "
                     f"replaces: {_names(near['building_id'][replaced].astype(str))}")
        near = near[~replaced]
    if not len(near):
        return result(None, limit, True, (), "; ".join(notes + [f"no building of the city within {reach - 1:g} m"]))
    ids = near["building_id"].astype(str).to_numpy()
    dist = shapely.distance(np.asarray(near.geometry.values), fp)
    if table:
        uses = [u.lower() if isinstance(u, str) else None
                for u in (near["use"] if "use" in near.columns else [None] * len(near))]
        own_high, own_assumed = high_rise(b.height_m, b.storeys, rs.use)
        theirs = [high_rise(h, n, u) for h, n, u in zip(_floats(near, "height_m"), _floats(near, "storeys"), uses)]
        their_high = np.array([t[0] for t in theirs], dtype=bool)
        need = np.array(GB50016_SEPARATION_M)[int(own_high) + their_high.astype(int)]
        # table 5.2.2 is for civil buildings: a pair with a factory is table 3.4.1's, which this rule does not hold
        own_factory = rs.use == "industrial"
        uncovered = (np.array([u == "industrial" for u in uses]) | own_factory) & (dist <= GB50016_FACTORY_REACH_M)
        need = np.where(uncovered, GB50016_FACTORY_MIN_M, need)
        if floor is not None:
            need = np.maximum(need, float(floor))
        # what was assumed, where it may have made the pair fail (a pair far enough apart passes either way)
        matters = ~uncovered & (dist < need - 1e-9)
        assumed = ([f"the model ({own_assumed})"] if own_assumed and matters.any() else []) + \
                  [f"{i} ({t[1]})" for i, t, m in zip(ids, theirs, matters) if t[1] and m]
    else:
        need = np.full(len(near), limit)
        uncovered = np.zeros(len(near), dtype=bool)
        assumed, own_high, own_assumed, own_factory = [], False, "", False
    margin = dist - need
    worst = int(np.argmin(margin))
    short = margin < -1e-9
    bad = short | uncovered
    if table and uncovered[worst]:
        why = " at least (an industrial building: GB 50016 table 3.4.1, not table 5.2.2)"
    elif table:
        high = ["the model" if own_high else None, ids[worst] if their_high[worst] else None]
        named = " and ".join(h for h in high if h)
        why = f" ({table} table 5.2.2, grades I/II: {named + ' high-rise' if named else 'neither high-rise'})"
    else:
        why = ""
    notes.insert(0, f"worst margin: {ids[worst]} at {dist[worst]:.2f} m, needs {need[worst]:g} m{why}")
    touching = ids[dist <= 1e-9]
    if len(touching):
        notes.append(f"{_names(touching)} touch(es) or overlap(s) the footprint (less than half of it on the "
                     "footprint, so a neighbour, not a building it replaces)")
    if short.any():
        notes.append("a fire wall facing a neighbour (the table's notes) is not taken into account")
    if uncovered.any():
        what = (f"the model is industrial ('use: industrial'), so its separation from {_names(ids[uncovered])} "
                f"(within {GB50016_FACTORY_REACH_M:g} m)" if own_factory else
                f"the separation from the industrial {_names(ids[uncovered])}")
        notes.append(f"not covered by table 5.2.2, which is for civil buildings: {what} needs a check by GB 50016 "
                     f"table 3.4.1 (factories: at least {GB50016_FACTORY_MIN_M:g} m from a grade I/II class 丙/丁/戊 "
                     "factory to a low-rise civil building, more otherwise)")
    if assumed:
        notes.append(f"taken as high-rise, the stricter, for want of data: {_names(assumed)}")
    if table and own_high and not own_assumed and not uncovered.all():
        notes.append(f"the model's height ({b.height_m:.2f} m) is to its roof top; GB 50016 appendix A leaves out "
                     "parapets and small rooftop rooms, so near 24 m / 27 m the high-rise test errs strict")
    return result(float(dist[worst]), float(need[worst]), not bad.any(), sorted(ids[bad].tolist()), "; ".join(notes))


def read_rules_yaml(text):
    """A rules YAML (text or an open file) as Python objects, with YAML's aliases (``*name``) refused: a rules
    file needs none, and a few hundred bytes of aliases nested ten deep name a billion values (the YAML "billion
    laughs"), which a check then walked for ever (an upload to the map held a server thread and the GIL).

    >>> read_rules_yaml("rules: {max_height_m: 24}")
    {'rules': {'max_height_m': 24}}
    >>> try:
    ...     read_rules_yaml("{a: &x [1, 2], b: *x}")
    ... except Exception as exc:
    ...     print(str(exc).splitlines()[0])
    a rules file may not use YAML aliases (*name), found *x; write the values out
    """
    import yaml

    class NoAliases(yaml.SafeLoader):
        def compose_node(self, parent, index):
            if self.check_event(yaml.events.AliasEvent):
                event = self.peek_event()
                raise yaml.composer.ComposerError(
                    None, None, f"a rules file may not use YAML aliases (*name), found *{event.anchor}; write the "
                    "values out", event.start_mark)
            return super().compose_node(parent, index)

    return yaml.load(text, Loader=NoAliases)  # noqa: S506 - a SafeLoader, with aliases refused


#: an IDS file's root element: ``<ids xmlns="http://standards.buildingsmart.org/IDS">``
IDS_NAMESPACE = "http://standards.buildingsmart.org/IDS"
#: the most bytes an IDS file may have (real ones are tens of kB; the map takes a rules file of 1 MiB at most)
MAX_IDS_BYTES = 16 << 20


def read_ids(data: bytes, name: str = "upload.ids"):
    """An IDS file's bytes as ifctester's ``Ids``, read without trusting them; RuleError saying what is wrong.

    The bytes are parsed with defusedxml first, refusing a DTD (``<!DOCTYPE``), entity declarations and external
    references: an IDS needs none, and they are how XML reads the server's files (XXE), fetches URLs or expands
    a few bytes into gigabytes (billion laughs). The IDS schema then decodes them with xmlschema allowed to open
    no resource (``allow="none"``, its own parser defused, ``xsi:schemaLocation`` hints ignored), against the
    schema that ships with ifctester, loaded from its folder only. The schema's errors are reported with the
    element they are about. ``name`` names the file in the messages. The CLI (:func:`_check_ids`) and the
    map's upload (``POST /api/bim/checks``) both read an IDS here.

    >>> read_ids(b'<!DOCTYPE ids [<!ENTITY x SYSTEM "file:///etc/passwd">]><ids/>', "x.ids")
    Traceback (most recent call last):
    ...
    twin_core.errors.RuleError: the IDS file 'x.ids' is refused: it has a DTD (<!DOCTYPE ...>), which can read the server's files, fetch URLs or expand entities without end, and an IDS needs none; remove the <!DOCTYPE ...> declaration and any &name; entity references, and send it again
    """
    import io
    from xml.etree.ElementTree import ParseError

    import defusedxml
    import defusedxml.ElementTree as safe_et
    import xmlschema
    from ifctester import ids as ids_mod

    what = f"the IDS file {name!r}"
    if len(data) > MAX_IDS_BYTES:
        raise RuleError(f"{what} is {len(data) / (1 << 20):.1f} MiB, over the limit of {MAX_IDS_BYTES >> 20} MiB for "
                        "an IDS; split its specifications over several files")
    try:
        root = safe_et.fromstring(data, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except defusedxml.DefusedXmlException:  # a DTD; entities and external references come only with one
        raise RuleError(f"{what} is refused: it has a DTD (<!DOCTYPE ...>), which can read the server's files, fetch "
                        "URLs or expand entities without end, and an IDS needs none; remove the <!DOCTYPE ...> "
                        f"declaration and any &name; entity references, and send it again") from None
    except ParseError as exc:
        raise RuleError(f"{what} cannot be read: it is not well-formed XML ({exc}); an IDS is an XML file "
                        f"starting <ids xmlns=\"{IDS_NAMESPACE}\">") from None
    if root.tag != f"{{{IDS_NAMESPACE}}}ids":
        ns, _, local = root.tag[1:].partition("}") if root.tag.startswith("{") else ("", "", root.tag)
        found = f"<{local[:80]}>" + (f" in the namespace {ns[:120]!r}" if ns else " in no namespace")
        raise RuleError(f"{what} is not an IDS: its root element is {found}, an IDS's is "
                        f"<ids xmlns=\"{IDS_NAMESPACE}\"> (buildingSMART Information Delivery Specification 1.0); "
                        "for limits upload a rules YAML instead")
    _check_patterns(root, what)
    try:
        resource = xmlschema.XMLResource(io.BytesIO(data), allow="none", defuse="always")
        decoded = _ids_schema().decode(resource, strip_namespaces=True, namespaces={"": IDS_NAMESPACE},
                                       use_location_hints=False)
    except xmlschema.XMLSchemaValidationError as exc:
        gist = " ".join(str(exc.reason or exc.message).split())[:300]
        raise RuleError(f"{what} is not a valid IDS: {gist} (at {exc.path or '/ids'}); fix it against the IDS 1.0 "
                        "schema (ifctester or buildingSMART's IDS Audit tool say where)") from None
    except (xmlschema.XMLSchemaException, ValueError) as exc:  # xmlschema's limits: nesting, number of elements
        why = " ".join(str(exc).split()).split(" for XMLResource(")[0]
        raise RuleError(f"{what} cannot be read: {why[:300]}; an IDS nests its elements a few levels deep") from None
    try:
        return ids_mod.Ids().parse(decoded)
    except Exception as exc:  # valid against the schema, yet not what ifctester can check
        raise RuleError(f"{what} cannot be checked with ifctester: {type(exc).__name__}: {exc}"[:400]) from None


#: the longest ``xs:pattern`` an IDS may give (real ones are a few dozen characters: '[A-Z]{2}[0-9]+')
MAX_PATTERN = 500
_XS = "{http://www.w3.org/2001/XMLSchema}"
_UNBOUNDED = re.compile(r"[*+]|\{\d+,\}")


def _nested_repeat(p: str) -> bool:
    """Whether pattern ``p`` has a group holding an unbounded repeat that is itself repeated without bound
    ('(a*)*', '((a+))+', '(ab+){2,}'): Python's re takes time exponential in the text it is matched against on
    those, holding the GIL (every request of the server waits). Escapes and character classes are skipped.

    >>> [_nested_repeat(x) for x in ("(a*)*b", "((a+))+", "(ab*){2,}", "[A-Z]{2}[0-9]+", "(ab)*", "(a*b){3}")]
    [True, True, True, False, False, False]
    """
    plain, i, n = [], 0, len(p)
    while i < n:  # escapes and [...] classes become one inert character, so their '*' or '(' count for nothing
        c = p[i]
        if c == "\\":
            plain.append("x")
            i += 2
            continue
        if c == "[":
            j = i + 1
            while j < n and p[j] != "]":
                j += 2 if p[j] == "\\" else 1
            plain.append("x")
            i = j + 1
            continue
        plain.append(c)
        i += 1
    q = "".join(plain)
    starts = []
    for i, c in enumerate(q):
        if c == "(":
            starts.append(i)
        elif c == ")" and starts:
            inner = q[starts.pop() + 1:i]
            if _UNBOUNDED.search(inner) and _UNBOUNDED.match(q, i + 1):
                return True
    return False


def _check_patterns(root, what: str) -> None:
    """Refuse an IDS whose ``xs:pattern`` restrictions ifctester could not run safely: one longer than
    :data:`MAX_PATTERN`, one that is no XML Schema regular expression (ifctester failed on it mid-check, a 500 on
    the map), or one with a repeated group that itself repeats without bound (catastrophic backtracking against
    a model's text: the uploader chooses both). A heuristic, the fast first gate: it catches the classic forms, not
    every slow one ('(a|a)*b'); the map's check then runs in a child process held to :data:`UPLOAD_IDS_LIMITS`
    (:func:`run_limited`), which stops those."""
    from elementpath.regex import RegexError, translate_pattern

    for el in root.iter(f"{_XS}pattern"):
        p = el.get("value")
        if p is None:
            continue
        shown = p if len(p) <= 60 else p[:60] + "..."
        if len(p) > MAX_PATTERN:
            raise RuleError(f"{what} has an xs:pattern of {len(p)} characters ({shown!r}); at most {MAX_PATTERN} "
                            "are taken: shorten it, or list the values (xs:enumeration)")
        try:
            translate_pattern(p, back_references=False, lazy_quantifiers=False, anchors=False)
        except RegexError as exc:
            raise RuleError(f"{what} has an xs:pattern that is no XML Schema regular expression: {shown!r} "
                            f"({' '.join(str(exc).split())[:120]}); fix it") from None
        if _nested_repeat(p):
            raise RuleError(f"{what} has an xs:pattern with a repeated group that repeats again ({shown!r}): "
                            "matching it can take hours on a long text; write it without the nested repeat "
                            "(e.g. '(ab)*' rather than '(a*b*)*')")


@functools.lru_cache(maxsize=1)
def _ids_schema():
    """The IDS 1.0 schema that ships with ifctester, loaded from its folder only (its w3.org imports are
    xmlschema's own copies)."""
    import xmlschema
    from ifctester import ids as ids_mod

    xsd = os.path.join(os.path.dirname(os.path.realpath(ids_mod.__file__)), "ids.xsd")
    return xmlschema.XMLSchema(xsd, allow="sandbox", defuse="always")


def load_ids(path: str):
    """The IDS file at ``path``, read as :func:`read_ids` reads an upload; RuleError naming the file."""
    try:
        if os.path.getsize(path) > MAX_IDS_BYTES:
            raise RuleError(f"the IDS file {path!r} is {os.path.getsize(path) / (1 << 20):.1f} MiB, over the limit "
                            f"of {MAX_IDS_BYTES >> 20} MiB for an IDS; split its specifications over several files")
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        raise RuleError(f"the IDS file {path!r} cannot be read: {exc.strerror or exc}") from None
    return read_ids(data, path)


def _clear_pattern_caches() -> None:
    from ifctester import facet

    clear = getattr(getattr(facet, "translate_pattern", None), "cache_clear", None)
    if clear is not None:
        clear()


def _check_ids(ifc_path: str, rs: RuleSet) -> list[RuleResult]:
    """The rule set's IDS requirements checked on the model at ``ifc_path``: its ``ids_spec`` when read already,
    else its ``ids`` file; in a child process held to ``rs.ids_limits`` where given (:func:`run_limited`)."""
    spec = rs.ids_spec if rs.ids_spec is not None else load_ids(rs.ids)
    if rs.ids_limits is not None:
        return _check_ids_limited(ifc_path, spec, rs.ids_limits, os.path.basename(str(rs.ids or "the IDS")))
    import ifcopenshell

    return _ids_results(spec, ifcopenshell.open(ifc_path))


def _ids_results(spec, f) -> list[RuleResult]:
    """Validate the ifctester ``Ids`` ``spec`` on the open model ``f``: a result per specification. The same in
    this process and in the child of :func:`run_limited`."""
    try:
        spec.validate(f)
    finally:  # ifctester keeps every pattern it translated (an unbounded cache): uploads would pile them up
        _clear_pattern_caches()
    out = []
    for s in spec.specifications:
        failed = [getattr(e, "GlobalId", None) or str(e) for e in getattr(s, "failed_entities", [])]
        passed = bool(s.status) if s.status is not None else True
        applicable = len(getattr(s, "applicable_entities", []) or [])
        if applicable:
            note = f"{_of(len(failed), applicable, 'applicable element')} {'fails' if len(failed) == 1 else 'fail'}" \
                if failed else ("the one applicable element complies" if applicable == 1 else
                                f"all {applicable} applicable elements comply")
        else:  # passed vacuously: say so, a regulator reading "ok" must not think something was checked
            note = "no element of the model is of the kinds this requirement applies to: nothing was checked"
        out.append(RuleResult(f"ids:{s.name}", "information requirement (IDS)", float(applicable - len(failed)),
                              float(applicable), "elements", passed, sorted(set(map(str, failed))), note))
    return out


@dataclass(frozen=True)
class IdsLimits:
    """What an IDS check run in a child process (:func:`run_limited`) may use.

    ``cpu_s``: seconds of CPU for the check itself (``RLIMIT_CPU``, counted from when the model is open);
    ``memory_mb``: address space the check may add to what the child holds once the model is open (``RLIMIT_AS``);
    ``wall_s``: seconds the parent waits for the check (default ``2 * cpu_s + 5``: a busy machine gives the child
    less than one core), after at most ``open_s`` for the child to start and open the model (the parent has read
    the same file already).
    """

    cpu_s: float = 20.0
    memory_mb: int = 1024
    wall_s: float | None = None
    open_s: float = 120.0

    @property
    def wait_s(self) -> float:
        return self.wall_s if self.wall_s is not None else 2 * self.cpu_s + 5


#: the limits of the map server's IDS check (``POST /api/bim/checks`` with an uploaded IDS). Real IDS files check a
#: model of thousands of elements in well under a second of CPU; an xs:pattern that backtracks ('(a|a)*b' against
#: a long name: time doubling with each letter) is stopped here, the gate of :func:`_check_patterns` missing it
UPLOAD_IDS_LIMITS = IdsLimits()


class LimitExceeded(Exception):
    """A child of :func:`run_limited` stopped before it answered: ``reason`` is ``"cpu"``, ``"memory"``,
    ``"wall"`` (the parent's clock) or ``"crash"`` (it died otherwise: ``detail`` says how)."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason, self.detail = reason, detail


class ChildError(Exception):
    """The work of a :func:`run_limited` child raised: ``kind`` its exception's type name, ``text`` its message."""

    def __init__(self, kind: str, text: str):
        super().__init__(f"{kind}: {text}")
        self.kind, self.text = kind, text


#: what the forkserver imports once, so that a child starts in milliseconds: the importer's modules (it shares the
#: forkserver) and ifctester's
_CHILD_PRELOAD = ["bim_import.compliance", "ifctester.ids", "ifctester.facet"]


def _child_context():
    """A forkserver (the import worker's, :func:`bim_import.importer._mp_context`, with ifctester preloaded too):
    a child forks from a clean single-threaded server, never from the caller's threads (a web server's pool, which
    a plain fork would copy mid-lock), and starts without importing ifcopenshell again (spawn does)."""
    import multiprocessing as mp

    try:
        ctx = mp.get_context("forkserver")
    except ValueError:  # pragma: no cover - platforms without fork
        return mp.get_context("spawn")
    from bim_import.importer import _PRELOAD

    ctx.set_forkserver_preload(list(dict.fromkeys(_PRELOAD + _CHILD_PRELOAD)))  # only read when it first starts
    return ctx


def _limit_self(cpu_s: float, memory_mb: int) -> None:
    """In the child: at most ``cpu_s`` more seconds of CPU (SIGXCPU, then SIGKILL a second later) and
    ``memory_mb`` more MiB of address space (an allocation beyond fails: MemoryError) than used now."""
    import resource

    use = resource.getrusage(resource.RUSAGE_SELF)
    soft = math.ceil(use.ru_utime + use.ru_stime + cpu_s)
    resource.setrlimit(resource.RLIMIT_CPU, (soft, soft + 1))
    try:
        with open("/proc/self/statm") as fh:
            held = int(fh.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):  # pragma: no cover - not Linux: the budget is all the room there is
        held = 0
    room = held + (int(memory_mb) << 20)
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    resource.setrlimit(resource.RLIMIT_AS, (room, room if hard == resource.RLIM_INFINITY else min(room, hard)))


def _limited_child(conn, prepare, work, cpu_s: float, memory_mb: int) -> None:
    """The child of :func:`run_limited`: ``prepare()`` unlimited, then the limits, then ``work(prepared)``;
    answers ("ready",), then ("ok", result), ("memory", text) or ("error", type name, text) on ``conn``."""
    try:
        state = prepare() if prepare is not None else None
        _limit_self(cpu_s, memory_mb)
        conn.send(("ready",))
        result = work(state) if prepare is not None else work()
        conn.send(("ok", result))
    except MemoryError as exc:
        conn.send(("memory", str(exc)[:300]))
    except BaseException as exc:  # the parent reports it (a child's exit status says nothing)
        conn.send(("error", type(exc).__name__, str(exc)[:1000]))
    finally:
        conn.close()


def run_limited(work, *, prepare=None, limits: IdsLimits = UPLOAD_IDS_LIMITS):
    """``work(prepare())`` (``work()`` without ``prepare``) in a child process held to ``limits``; its result.

    The child (from :func:`_child_context`'s forkserver) runs ``prepare`` first, unlimited but for ``limits.open_s``
    of the parent's clock, then sets its own ``RLIMIT_CPU`` and ``RLIMIT_AS`` (:func:`_limit_self`) and runs
    ``work``; the parent waits ``limits.wait_s`` for its answer and kills it then. Both callables and the result
    must pickle. Raises :class:`LimitExceeded` where the child ran out of CPU, memory or time or died, and
    :class:`ChildError` where ``work`` raised.

    >>> import operator
    >>> run_limited(functools.partial(operator.add, 2, 3), limits=IdsLimits(cpu_s=5))
    5
    """
    import signal

    ctx = _child_context()
    recv, send = ctx.Pipe(duplex=False)
    child = ctx.Process(target=_limited_child, args=(send, prepare, work, limits.cpu_s, limits.memory_mb),
                        name="twin-limited", daemon=True)
    child.start()
    send.close()  # the child holds the only writer: its death ends a read (EOFError)
    try:
        msg = None
        for phase, wait in (("ready", limits.open_s), ("answer", limits.wait_s)):
            if not recv.poll(wait):
                raise LimitExceeded("wall", f"no {phase} within {wait:g} s")
            msg = recv.recv()
            if msg[0] != "ready":
                break
    except EOFError:  # it died without a word: SIGXCPU past RLIMIT_CPU, SIGKILL past the hard one, a crash
        child.join(5)
        code = child.exitcode
        if code in (-signal.SIGXCPU, -signal.SIGKILL):
            raise LimitExceeded("cpu", f"stopped by signal {-code}") from None
        raise LimitExceeded("crash", f"exit status {code}") from None
    finally:
        recv.close()
        if child.is_alive():
            child.kill()
        child.join(5)
        if child.exitcode is not None:
            child.close()
    if msg[0] == "ok":
        return msg[1]
    if msg[0] == "memory":
        raise LimitExceeded("memory", msg[1])
    raise ChildError(msg[1], msg[2])


def _check_ids_limited(ifc_path: str, spec, limits: IdsLimits, name: str) -> list[RuleResult]:
    """:func:`_ids_results` in a child process (:func:`run_limited`); RuleError saying what to do where the IDS
    took too long or too much memory."""
    import ifcopenshell

    what = f"the IDS file {name!r}"
    try:
        return run_limited(functools.partial(_ids_results, spec), limits=limits,
                           prepare=functools.partial(ifcopenshell.open, ifc_path))
    except LimitExceeded as exc:
        if exc.reason == "wall" and "ready" in exc.detail:  # the model, not the IDS: the parent read it already
            raise RuleError(f"the model took more than {limits.open_s:g} s to open for the check of {what}, and the "
                            "check was stopped; the server is busy or the model very large: try again later, or "
                            "send a smaller model") from None
        if exc.reason in ("cpu", "wall"):
            took = f"more than {limits.cpu_s:g} s of CPU" if exc.reason == "cpu" else f"more than {limits.wait_s:g} s"
            raise RuleError(f"{what} took {took} to check against the model and was stopped; its xs:pattern "
                            "restrictions are the likely cause (a regular expression that backtracks, e.g. "
                            "overlapping alternatives repeated, '(a|a)*b'): simplify its patterns, or list the "
                            "values (xs:enumeration), and send it again") from None
        if exc.reason == "memory":
            raise RuleError(f"{what} needed more than {limits.memory_mb} MiB of memory to check against the model "
                            "and was stopped; simplify its patterns and restrictions, or split its specifications "
                            "over several files") from None
        raise RuleError(f"the check of {what} against the model failed in its worker process ({exc.detail}); "
                        "try again, and if it fails again simplify the IDS or report it") from None
    except ChildError as exc:
        raise RuleError(f"{what} cannot be checked with ifctester: {exc.kind}: {exc.text}"[:400]) from None

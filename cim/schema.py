"""Declared feature classes of the city information model.

Each feature class names its geometry type and its fields (name, dtype, unit,
required, the plausible range of a number and why). :func:`conform` checks a
GeoDataFrame against a class: required fields present, no unknown fields,
values cast to the declared dtype and within their field's range.

Examples
--------
>>> from cim.schema import FEATURE_CLASSES
>>> fc = FEATURE_CLASSES["buildings"]
>>> fc.geometry_type
'MultiPolygon'
>>> fc.field("height_m").unit
'm'
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping

import numpy as np
import pandas as pd

from twin_core.errors import FieldError, SchemaError

__all__ = [
    "Field",
    "FeatureClass",
    "RasterClass",
    "FEATURE_CLASSES",
    "RASTER_CLASSES",
    "check_range",
    "conform",
    "feature_class",
]

_DTYPES = {"int64", "float64", "str", "bool", "datetime"}


@dataclass(frozen=True)
class Field:
    """One attribute of a feature class."""

    name: str
    dtype: str  # one of int64, float64, str, bool, datetime
    unit: str | None = None
    required: bool = False
    description: str = ""
    choices: tuple[str, ...] | None = None
    minimum: float | None = None  # plausible range of a number (inclusive); None: no bound on that side
    maximum: float | None = None
    range_why: str = ""  # why the range: the physical or domain fact behind it (in the refusal message)

    def __post_init__(self) -> None:
        if self.dtype not in _DTYPES:
            raise SchemaError(f"field {self.name!r}: dtype {self.dtype!r} is not one of {sorted(_DTYPES)}")
        if self.minimum is not None or self.maximum is not None:
            if self.dtype not in ("int64", "float64"):
                raise SchemaError(f"field {self.name!r}: only numbers have a range; its dtype is {self.dtype!r}")
            if self.minimum is not None and self.maximum is not None and self.minimum > self.maximum:
                raise SchemaError(f"field {self.name!r}: minimum {self.minimum} is above maximum {self.maximum}")
            if not self.range_why:
                raise SchemaError(f"field {self.name!r}: a range needs its reason (range_why=...)")

    @property
    def has_range(self) -> bool:
        return self.minimum is not None or self.maximum is not None

    def out_of_range(self, values) -> np.ndarray:
        """Which of ``values`` (numbers, nulls as NaN) lie outside the field's plausible range (nulls never)."""
        v = np.asarray(values, dtype="float64")
        bad = np.zeros(v.shape, dtype=bool)
        with np.errstate(invalid="ignore"):
            if self.minimum is not None:
                bad |= v < self.minimum
            if self.maximum is not None:
                bad |= v > self.maximum
        return bad

    def range_text(self) -> str:
        """The plausible range in words, e.g. 'from 0 to 1000 m', '>= 0 veh/h'."""
        unit = f" {self.unit}" if self.unit and self.unit != "1" else ""
        lo, hi = (None if v is None else _num_text(v, group=True) for v in (self.minimum, self.maximum))
        if lo is not None and hi is not None:
            return f"from {lo} to {hi}{unit}"
        return f">= {lo}{unit}" if lo is not None else f"<= {hi}{unit}"


@dataclass(frozen=True)
class FeatureClass:
    """A named vector layer type with geometry type and fields."""

    name: str
    geometry_type: str  # Point, LineString, MultiPolygon, ...
    fields: tuple[Field, ...]
    description: str = ""
    id_field: str = "fid"

    def field(self, name: str) -> Field:
        for f in self.fields:
            if f.name == name:
                return f
        raise FieldError(
            f"feature class {self.name!r} has no field {name!r}; its fields are {self.field_names}"
        )

    @property
    def field_names(self) -> list[str]:
        return [f.name for f in self.fields]

    @property
    def required(self) -> list[str]:
        return [f.name for f in self.fields if f.required]

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "geometry_type": self.geometry_type,
            "description": self.description,
            "fields": [
                {
                    "name": f.name,
                    "dtype": f.dtype,
                    "unit": f.unit,
                    "required": f.required,
                    "description": f.description,
                    **({"choices": list(f.choices)} if f.choices else {}),
                    **({"minimum": f.minimum, "maximum": f.maximum, "range_why": f.range_why} if f.has_range else {}),
                }
                for f in self.fields
            ],
        }


@dataclass(frozen=True)
class RasterClass:
    name: str
    unit: str
    dtype: str = "float32"
    description: str = ""


F = Field

# Plausible ranges: bounds that physics or the domain gives, wide enough for any real city, so that only a unit
# mix-up, a placeholder (-9999, 1e300) or a typo falls outside them.
_HEIGHT = dict(minimum=0.0, maximum=1000.0,
               range_why="a height is not negative, and the tallest building on earth, the Burj Khalifa, is 828 m")
_ELEVATION = dict(minimum=-1000.0, maximum=9000.0,
                  range_why="ground on earth lies between the Dead Sea shore (-430 m; road tunnels reach about "
                            "-300 m) and Everest (8,849 m)")
_RATIO_0_1 = "a share of the parcel area, a fraction from 0 to 1 (60 % is 0.6)"

BUILDING_USES = ("residential", "commercial", "office", "industrial", "public", "school", "hospital", "mixed")
ROAD_CLASSES = (
    "motorway", "trunk", "primary", "secondary", "tertiary", "residential", "service", "unclassified", "other"
)
POI_KINDS = ("shelter", "hospital", "school", "metro_station", "fire_station", "police", "park", "other")
SENSOR_KINDS = ("rain_gauge", "river_level", "traffic_counter", "air_quality", "camera", "crowd_counter", "other")

FEATURE_CLASSES: dict[str, FeatureClass] = {
    fc.name: fc
    for fc in [
        FeatureClass(
            "buildings",
            "MultiPolygon",
            (
                F("building_id", "str", required=True, description="stable identifier"),
                F("height_m", "float64", "m", required=True, description="height above ground to roof top", **_HEIGHT),
                F("storeys", "int64", "1", description="number of storeys above ground", minimum=0, maximum=200,
                  range_why="a count is not negative, and the tallest building on earth has 163 storeys"),
                F("use", "str", choices=BUILDING_USES, description="main use"),
                F("year", "int64", "a", description="year of construction", minimum=-10000, maximum=2200,
                  range_why="the oldest known buildings date from about 10,000 BCE (-10000), and planned ones from "
                            "the next decades; a year such as 20240 is a typo"),
                F("ground_elev_m", "float64", "m", description="ground elevation at the footprint (CGCS2000 heights)",
                  **_ELEVATION),
                F("lod", "int64", "1", description="CityGML level of detail of the best model held (1 block, 2 roofs, 3+ BIM)",
                  minimum=0, maximum=4, range_why="CityGML defines the levels of detail 0 to 4"),
                F("source_id", "str", description="identifier in the source data (OSM id, IFC GlobalId ...)"),
                F("gfa_m2", "float64", "m2", description="gross floor area", minimum=0.0, maximum=1e7,
                  range_why="an area is not negative, and the largest building on earth by floor area (Chengdu's "
                            "New Century Global Center) has about 1.76 million m2"),
                F("parcel_id", "str", description="parcel the building stands on"),
            ),
            "Building footprints (LoD1 massing) with height and use.",
            id_field="building_id",
        ),
        FeatureClass(
            "road_links",
            "LineString",
            (
                F("link_id", "str", required=True),
                F("from_node", "str", required=True),
                F("to_node", "str", required=True),
                F("lanes", "int64", "1", required=True, minimum=0, maximum=50,
                  range_why="a count is not negative, and the widest road sections (toll plazas) have about 50 lanes"),
                F("speed_limit_kmh", "float64", "km/h", required=True, minimum=0.0, maximum=300.0,
                  range_why="a speed is not negative (0: closed), posted limits are at most 160 km/h, and 300 km/h "
                            "leaves room for unlimited motorways; a speed in m/s or mph needs converting"),
                F("capacity_vph", "float64", "veh/h", description="capacity of the whole link", minimum=0.0, maximum=120_000.0,
                  range_why="a capacity is not negative, and a lane carries at most about 2,400 veh/h (Highway "
                            "Capacity Manual), so 50 lanes about 120,000 veh/h; a capacity per day needs converting"),
                F("road_class", "str", choices=ROAD_CLASSES),
                F("oneway", "bool", description="True: the geometry's direction only"),
                F("length_m", "float64", "m", minimum=0.0, maximum=1_000_000.0,
                  range_why="a length is not negative, and a road link of a city model longer than 1,000 km is a "
                            "unit error (km or cm for m)"),
                F("name", "str"),
                F("priority", "int64", "1", description="SUMO priority"),
            ),
            "Directed road links (one per direction unless oneway is False).",
            id_field="link_id",
        ),
        FeatureClass(
            "road_nodes",
            "Point",
            (
                F("node_id", "str", required=True),
                F("kind", "str", description="junction type: priority, traffic_light, dead_end, centroid ..."),
                F("elevation_m", "float64", "m", **_ELEVATION),
            ),
            "Road junctions.",
            id_field="node_id",
        ),
        FeatureClass(
            "parcels",
            "MultiPolygon",
            (
                F("parcel_id", "str", required=True),
                F("zoning", "str", required=True, description="zoning code, e.g. R2, C1, M1, G1"),
                F("max_height_m", "float64", "m", **_HEIGHT),
                F("max_far", "float64", "1", description="maximum floor-area ratio", minimum=0.0, maximum=50.0,
                  range_why="a floor-area ratio is not negative, and the densest zoning anywhere (Manhattan with "
                            "bonuses, Hong Kong) stays near 15 to 33"),
                F("max_coverage", "float64", "1", description="maximum site coverage (0..1)", minimum=0.0, maximum=1.0,
                  range_why=_RATIO_0_1),
                F("min_setback_m", "float64", "m", minimum=0.0, maximum=1000.0,
                  range_why="a setback is a distance inside the parcel, not negative, and not kilometres"),
                F("min_green_ratio", "float64", "1", minimum=0.0, maximum=1.0, range_why=_RATIO_0_1),
            ),
            "Land parcels with their planning (zoning) conditions.",
            id_field="parcel_id",
        ),
        FeatureClass(
            "water",
            "MultiPolygon",
            (
                F("water_id", "str", required=True),
                F("kind", "str", choices=("river", "lake", "canal", "pond", "other")),
                F("name", "str"),
                F("normal_level_m", "float64", "m", **_ELEVATION),
            ),
            "Water bodies and rivers.",
            id_field="water_id",
        ),
        FeatureClass(
            "pois",
            "Point",
            (
                F("poi_id", "str", required=True),
                F("kind", "str", required=True, choices=POI_KINDS),
                F("name", "str"),
                F("capacity", "int64", "persons", minimum=0, maximum=10_000_000,
                  range_why="a count of people is not negative, and no shelter or venue holds 10 million"),
            ),
            "Points of interest: shelters, hospitals, schools, metro stations.",
            id_field="poi_id",
        ),
        FeatureClass(
            "sensors",
            "Point",
            (
                F("sensor_id", "str", required=True),
                F("kind", "str", required=True, choices=SENSOR_KINDS),
                F("unit", "str", required=True),
                F("warn_threshold", "float64", description="value at which a warning is raised (sensor unit)"),
                F("alarm_threshold", "float64", description="value at which an alarm is raised (sensor unit)"),
                F("name", "str"),
                F("target_id", "str", description="feature observed (a road link, a river reach)"),
                F("min_value", "float64",
                  description="lowest plausible reading (sensor unit): a reading below it is refused, not stored; "
                              "empty: the default of the sensor's kind (cim.sensors.READING_RANGES)"),
                F("max_value", "float64",
                  description="highest plausible reading (sensor unit): a reading above it is refused, not stored; "
                              "empty: the default of the sensor's kind (cim.sensors.READING_RANGES)"),
            ),
            "Sensors, their thresholds and the range of readings they can plausibly give.",
            id_field="sensor_id",
        ),
        FeatureClass(
            "areas",
            "MultiPolygon",
            (
                F("area_id", "str", required=True),
                F("kind", "str", description="plaza, station, district, study area ..."),
                F("name", "str"),
            ),
            "Named areas (plazas, districts, study areas) used by scenarios.",
            id_field="area_id",
        ),
    ]
}

RASTER_CLASSES: dict[str, RasterClass] = {
    r.name: r
    for r in [
        RasterClass("dem", "m", description="ground elevation (bare earth)"),
        RasterClass("manning", "s/m^(1/3)", description="Manning roughness coefficient n"),
    ]
}


def feature_class(name: str) -> FeatureClass:
    try:
        return FEATURE_CLASSES[name]
    except KeyError:
        raise SchemaError(
            f"unknown feature class {name!r}; choose one of {sorted(FEATURE_CLASSES)}"
        ) from None


_TRUE = frozenset({"true", "t", "yes", "y", "1"})
_FALSE = frozenset({"false", "f", "no", "n", "0"})
_BAD = object()  # marks a value that does not convert
_EXPECT = {
    "int64": "a whole number",
    "float64": "a number",
    "bool": "true or false (true/false, t/f, yes/no, y/n, 1/0 in any case, or null)",
    "str": "text",
    "datetime": "a date/time",
}


def _is_null(v) -> bool:
    return v is None or v is pd.NA or v is pd.NaT or (isinstance(v, (float, np.floating)) and v != v)


def _plain(v):
    """A NumPy scalar as the Python value (for messages: 3.6, not np.float64(3.6))."""
    return v.item() if isinstance(v, np.generic) else v


def _refuse(series: pd.Series, bad, f: Field, layer: str, ids: pd.Series | None, why: str):
    """Raise a SchemaError naming the field, the first bad value and the feature (position and id) holding it."""
    pos = np.flatnonzero(np.asarray(bad, dtype=bool))
    i = int(pos[0])
    where = f"feature {i + 1} of {len(series)}"
    if ids is not None and not _is_null(ids.iloc[i]):
        where += f" ({ids.name} {_plain(ids.iloc[i])!r})"
    raise SchemaError(
        f"layer {layer!r}: field {f.name!r} must be {_EXPECT[f.dtype]} ({f.dtype}, {f.unit or 'no unit'}); "
        f"{len(pos)} value(s) {why}, e.g. {_plain(series.iloc[i])!r} at {where}. "
        f"Fix the source values or map another field to {f.name!r}."
    )


def _numeric(series: pd.Series, f: Field, layer: str, ids) -> pd.Series:
    """Numbers as a nullable (Int64 / Float64) column; text that is no number is refused, and so are booleans
    (JSON ``true`` is no capacity of 1)."""
    if pd.api.types.is_bool_dtype(series.dtype):
        _refuse(series, series.notna().to_numpy(), f, layer, ids, "are booleans (true/false), not numbers")
    if series.dtype == object:
        flags = np.array([isinstance(v, (bool, np.bool_)) for v in series], dtype=bool)
        if flags.any():
            _refuse(series, flags, f, layer, ids, "are booleans (true/false), not numbers")
    num = pd.to_numeric(series, errors="coerce", dtype_backend="numpy_nullable")
    bad = num.isna().to_numpy() & series.notna().to_numpy()
    if bad.any():
        _refuse(series, bad, f, layer, ids, "are not numbers")
    return num


def _to_int(series: pd.Series, f: Field, layer: str, ids) -> pd.Series:
    """Whole numbers: int64, or nullable Int64 when there are nulls; 3.6 is refused, not truncated."""
    num = _numeric(series, f, layer, ids)
    if pd.api.types.is_integer_dtype(num.dtype):
        return num.astype("Int64" if num.isna().any() else "int64")
    v = num.to_numpy(dtype="float64", na_value=np.nan)
    null = np.isnan(v)
    bad = ~null & ~((v == np.round(v)) & (np.abs(v) < 2.0**63))
    if bad.any():
        _refuse(series, bad, f, layer, ids, "are not whole numbers within the 64-bit range (an integer field "
                "would truncate them, so they are refused)")
    _refuse_rounded(series, f, layer, ids)
    ints = np.where(null, 0, v).astype("int64")
    return pd.Series(pd.arrays.IntegerArray(ints, null) if null.any() else ints, index=series.index)


def _refuse_rounded(series: pd.Series, f: Field, layer: str, ids) -> None:
    """Refuse whole numbers of 2**53 or more that arrived as floating-point numbers (a Shapefile number field
    of 19+ digits, a CSV read as float ...): their last digits may already be lost, 9007199254740993 reads as
    9007199254740992, so an id or a count would be stored wrong without a word."""
    if pd.api.types.is_float_dtype(series.dtype):
        v = series.to_numpy(dtype="float64", na_value=np.nan)
        big = np.isfinite(v) & (np.abs(v) >= 2.0**53)
    elif series.dtype == object:
        big = np.array([isinstance(v, (float, np.floating)) and np.isfinite(v) and abs(v) >= 2.0**53
                        for v in series], dtype=bool)
    else:
        return
    if big.any():
        _refuse(series, big, f, layer, ids,
                "are whole numbers of 2**53 (9007199254740992) or more read as floating-point numbers, which may "
                "have lost their last digits (9007199254740993 reads as 9007199254740992): give the field as text (a "
                "GeoJSON with the ids as strings, a text field in a GeoPackage), or import the unzipped .shp of a "
                "zipped Shapefile, whose wide number fields are read exactly")


def _bool_value(v):
    if _is_null(v):
        return None
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    if isinstance(v, (int, float, np.integer, np.floating)):
        return bool(v) if v in (0, 1) else _BAD
    if isinstance(v, str):
        s = v.strip().lower()
        return True if s in _TRUE else False if s in _FALSE else _BAD
    return _BAD


def _to_bool(series: pd.Series, f: Field, layer: str, ids) -> pd.Series:
    """Booleans from bools, 0/1 and true/false-like text; nulls stay null (nullable boolean)."""
    if pd.api.types.is_bool_dtype(series.dtype):
        return series.astype("boolean" if series.isna().any() else bool)
    vals = [_bool_value(v) for v in series]
    bad = [v is _BAD for v in vals]
    if any(bad):
        _refuse(series, bad, f, layer, ids, "are not true/false")
    out = pd.Series(pd.array(vals, dtype="boolean"), index=series.index)
    return out if out.isna().any() else out.astype(bool)


def as_text(v) -> str:
    """A value as text; whole floats (1001.0, as read from a numeric column with nulls) as integers."""
    if isinstance(v, (float, np.floating)) and np.isfinite(v) and float(v).is_integer():
        return str(int(v))
    return str(v)


def cast_value(value, dtype: str):
    """One value as a value of a column of ``dtype`` (int64, float64, bool, str; others as given), None for a
    null, or ValueError where that would change it: 3.6 for an integer, 'tall' or inf for a number, 'maybe'
    for a boolean (the same rules :func:`conform` applies to whole columns)."""
    if _is_null(value):
        return None
    value = _plain(value)
    if dtype in ("int64", "float64"):
        if isinstance(value, bool):
            raise ValueError(f"{value!r} is a boolean")
        v = float(value)  # a number, or text of one
        if not np.isfinite(v) or (dtype == "int64" and not (v.is_integer() and abs(v) < 2.0**63)):
            raise ValueError(f"{value!r} is not a {dtype} value")
        if dtype == "float64":
            return v
        return value if isinstance(value, int) else int(v)
    if dtype == "bool":
        b = _bool_value(value)
        if b is _BAD:
            raise ValueError(f"{value!r} is not true or false")
        return b
    if dtype == "str":
        if isinstance(value, (dict, list, tuple, set)):
            raise ValueError(f"{value!r} is not text")
        return as_text(value)
    return value


def _to_str(series: pd.Series) -> pd.Series:
    return pd.Series([None if _is_null(v) else as_text(v) for v in series], index=series.index, dtype=object)


def _cast(series: pd.Series, f: Field, layer: str, ids: pd.Series | None = None) -> pd.Series:
    """Cast a column to its field's dtype; a value that does not fit is a SchemaError naming it and its feature."""
    try:
        if f.dtype == "int64":
            return _to_int(series, f, layer, ids)
        if f.dtype == "float64":
            num = _numeric(series, f, layer, ids)
            out = pd.Series(num.to_numpy(dtype="float64", na_value=np.nan), index=series.index)
            inf = np.isinf(out.to_numpy())
            if inf.any():  # NaN is null (allowed where the field is optional); inf is no measurement
                _refuse(series, inf, f, layer, ids, "are infinite")
            return out
        if f.dtype == "bool":
            return _to_bool(series, f, layer, ids)
        if f.dtype == "str":
            _refuse_rounded(series, f, layer, ids)
            return _to_str(series)
        if f.dtype == "datetime":
            return pd.to_datetime(series)
    except (ValueError, TypeError) as exc:
        if isinstance(exc, SchemaError):
            raise
        bad = series.head(3).tolist()
        raise SchemaError(
            f"layer {layer!r}: field {f.name!r} must be {f.dtype} ({f.unit or 'no unit'}); "
            f"values such as {bad} cannot be converted: {exc}. Fix the source values or map another field to it."
        ) from exc
    return series


def _num_text(v, *, group: bool = False) -> str:
    """A number for a message: 1000 (not 1000.0), 1e+300, -9999.5; with ``group`` 120,000 (for bounds)."""
    v = _plain(v)
    if isinstance(v, float) and v.is_integer() and abs(v) < 1e15:
        v = int(v)
    if isinstance(v, float):
        return f"{v:.6g}"
    return f"{v:,}" if group else str(v)


def check_range(series: pd.Series, f: Field, layer: str, ids: pd.Series | None = None) -> None:
    """Refuse values of a numeric column outside its field's plausible range (nulls pass), naming the layer,
    the field, how many values, the first ones with their features, the range and why, and what to do."""
    if not f.has_range or not len(series):
        return
    v = pd.to_numeric(series, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
    pos = np.flatnonzero(f.out_of_range(v))
    if not len(pos):
        return
    examples = []
    for i in pos[:3]:
        where = f"feature {i + 1}"
        if ids is not None and not _is_null(ids.iloc[i]):
            where += f" ({ids.name} {_plain(ids.iloc[i])!r})"
        examples.append(f"{_num_text(series.iloc[i])} at {where}")
    more = f" and {len(pos) - 3} more" if len(pos) > 3 else ""
    optional = "" if f.required else (", or leave the source field out (drop=[...]; CLI: --drop FIELD) or "
                                       "its values empty where they are unknown")
    raise SchemaError(
        f"layer {layer!r}: field {f.name!r} must lie {f.range_text()} ({f.range_why}); {len(pos)} of "
        f"{len(series)} value(s) lie outside, e.g. {'; '.join(examples)}{more}. Nothing was written. Fix the "
        f"source values (a wrong unit, or a placeholder such as -9999 or 1e300 for 'unknown'), map another "
        f"field to {f.name!r}{optional}, and import again"
    )


def _null_column(f: Field, index: pd.Index, layer: str) -> pd.Series:
    """An all-null column of a field's declared type (Int64, boolean, float NaN, ...) so a store creates
    the declared column type, not text."""
    return _cast(pd.Series([None] * len(index), index=index, dtype=object), f, layer)


def conform(gdf, fc: FeatureClass | str, *, allow_extra: bool = False):
    """Check and cast a GeoDataFrame to a feature class.

    Raises :class:`FieldError` for a missing required field or (unless
    ``allow_extra``) an unknown field, and :class:`SchemaError` for a value
    that does not fit its field (text that is no number, 3.6 for a whole number,
    'maybe' for a boolean, a number outside the field's plausible range such as a
    height of -5 or 1e300 m), naming the value and its feature. Booleans accept
    true/false, t/f, yes/no, y/n, 1/0 (any case) and numbers 0/1; nulls stay
    null (nullable ``Int64`` / ``boolean`` columns). Optional fields that are
    absent are added as nulls of their declared type so every layer of a class
    has the same columns, stored with the same types.
    """
    if isinstance(fc, str):
        fc = feature_class(fc)
    cols = [c for c in gdf.columns if c != gdf.geometry.name]
    unknown = [c for c in cols if c not in fc.field_names]
    if unknown and not allow_extra:
        raise FieldError(
            f"layer {fc.name!r}: unknown field(s) {unknown}; the class has {fc.field_names}. "
            "Map them with field_map={'source': 'target'} (CLI: --map SOURCE=TARGET) or drop them "
            "(drop=[...]; CLI: --drop FIELD)."
        )
    missing = [name for name in fc.required if name not in cols]
    if missing:
        raise FieldError(
            f"layer {fc.name!r}: required field(s) {missing} missing; present: {cols}. "
            "Add them or map a source field with field_map={'source': 'target'} (CLI: --map SOURCE=TARGET)."
        )
    out = gdf.copy()
    ids = out[fc.id_field] if fc.id_field in out.columns else None
    for f in fc.fields:
        if f.name not in out.columns:
            out[f.name] = _null_column(f, out.index, fc.name)
            continue
        if f.required and out[f.name].isna().any():
            n = int(out[f.name].isna().sum())
            raise FieldError(f"layer {fc.name!r}: required field {f.name!r} has {n} empty value(s); fill them")
        out[f.name] = _cast(out[f.name], f, fc.name, ids)
        check_range(out[f.name], f, fc.name, ids)
        if f.choices:
            vals = set(out[f.name].dropna().unique())
            bad = sorted(str(v) for v in vals - set(f.choices))
            if bad:
                raise SchemaError(
                    f"layer {fc.name!r}: field {f.name!r} has value(s) {bad[:5]} not in {list(f.choices)}"
                )
    if fc.id_field in out.columns and out[fc.id_field].duplicated().any():
        dup = out.loc[out[fc.id_field].duplicated(), fc.id_field].head(3).tolist()
        raise SchemaError(f"layer {fc.name!r}: duplicate {fc.id_field} values such as {dup}; ids must be unique")
    ordered = [f.name for f in fc.fields] + ([c for c in cols if c not in fc.field_names] if allow_extra else [])
    return out[ordered + [out.geometry.name]]


def field_map_apply(gdf, field_map: Mapping[str, str] | None, *, drop: Iterable[str] | None = None):
    """Drop source fields (``drop``), then rename source fields to feature-class fields (``field_map``).

    A rename onto a name the input already uses (and does not rename or drop) is refused, as is
    mapping two source fields onto one name: either would leave two columns of that name.
    """
    drop = list(drop or [])
    if gdf.geometry.name in drop:
        raise FieldError(f"drop names the geometry column {gdf.geometry.name!r}; a layer needs its geometry")
    unknown = [c for c in drop if c not in gdf.columns]
    if unknown:
        raise FieldError(f"drop names source field(s) {unknown} that the input lacks; it has {list(gdf.columns)}")
    gdf = gdf.drop(columns=drop) if drop else gdf
    if not field_map:
        return gdf
    missing = [k for k in field_map if k not in gdf.columns]
    if missing:
        raise FieldError(f"field_map names source field(s) {missing} that the input lacks; it has {list(gdf.columns)}")
    _check_map_targets(gdf, field_map)
    return gdf.rename(columns=dict(field_map))


def _check_map_targets(gdf, field_map: Mapping[str, str]) -> None:
    """Refuse a field map whose targets collide with each other or with columns the input keeps."""
    targets: dict[str, str] = {}
    for src, dst in field_map.items():
        if dst in targets:
            raise FieldError(
                f"field_map maps both {targets[dst]!r} and {src!r} onto {dst!r}; map only one of them to {dst!r} "
                "(and the other elsewhere, or drop it)"
            )
        targets[dst] = src
    kept = [c for c in gdf.columns if c not in field_map]
    for dst, src in targets.items():
        if dst in kept:
            raise FieldError(
                f"field_map renames {src!r} to {dst!r}, but the input already has a column {dst!r}; drop the "
                f"source column {dst!r} (drop=[{dst!r}], --drop {dst}) or map it to another field "
                f"({dst!r}: 'OTHER', --map {dst}=OTHER)"
            )

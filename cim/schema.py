"""Declared feature classes of the city information model.

Each feature class names its geometry type and its fields (name, dtype, unit,
required). :func:`conform` checks a GeoDataFrame against a class: required
fields present, no unknown fields, values cast to the declared dtype.

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

from dataclasses import dataclass, field
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

    def __post_init__(self) -> None:
        if self.dtype not in _DTYPES:
            raise SchemaError(f"field {self.name!r}: dtype {self.dtype!r} is not one of {sorted(_DTYPES)}")


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
                F("height_m", "float64", "m", required=True, description="height above ground to roof top"),
                F("storeys", "int64", "1", description="number of storeys above ground"),
                F("use", "str", choices=BUILDING_USES, description="main use"),
                F("year", "int64", "a", description="year of construction"),
                F("ground_elev_m", "float64", "m", description="ground elevation at the footprint (CGCS2000 heights)"),
                F("lod", "int64", "1", description="CityGML level of detail of the best model held (1 block, 2 roofs, 3+ BIM)"),
                F("source_id", "str", description="identifier in the source data (OSM id, IFC GlobalId ...)"),
                F("gfa_m2", "float64", "m2", description="gross floor area"),
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
                F("lanes", "int64", "1", required=True),
                F("speed_limit_kmh", "float64", "km/h", required=True),
                F("capacity_vph", "float64", "veh/h", description="capacity of the whole link"),
                F("road_class", "str", choices=ROAD_CLASSES),
                F("oneway", "bool", description="True: the geometry's direction only"),
                F("length_m", "float64", "m"),
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
                F("elevation_m", "float64", "m"),
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
                F("max_height_m", "float64", "m"),
                F("max_far", "float64", "1", description="maximum floor-area ratio"),
                F("max_coverage", "float64", "1", description="maximum site coverage (0..1)"),
                F("min_setback_m", "float64", "m"),
                F("min_green_ratio", "float64", "1"),
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
                F("normal_level_m", "float64", "m"),
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
                F("capacity", "int64", "persons"),
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
            ),
            "Sensors and their thresholds.",
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


def _cast(series: pd.Series, f: Field, layer: str) -> pd.Series:
    try:
        if f.dtype == "int64":
            if series.isna().any():
                return series.astype("Int64")
            return series.astype("int64")
        if f.dtype == "float64":
            return pd.to_numeric(series, errors="raise").astype("float64")
        if f.dtype == "bool":
            if series.dtype == object:
                mapping = {"true": True, "false": False, "1": True, "0": False, "yes": True, "no": False}
                return series.map(lambda v: mapping.get(str(v).lower(), v) if v is not None else v).astype(bool)
            return series.astype(bool)
        if f.dtype == "str":
            return series.astype(object).where(series.notna(), None).map(lambda v: None if v is None else str(v))
        if f.dtype == "datetime":
            return pd.to_datetime(series)
    except (ValueError, TypeError) as exc:
        bad = series.head(3).tolist()
        raise SchemaError(
            f"layer {layer!r}: field {f.name!r} must be {f.dtype} ({f.unit or 'no unit'}); "
            f"values such as {bad} cannot be converted: {exc}. Fix the source values or map another field to it."
        ) from exc
    return series


def conform(gdf, fc: FeatureClass | str, *, allow_extra: bool = False):
    """Check and cast a GeoDataFrame to a feature class.

    Raises :class:`FieldError` for a missing required field or (unless
    ``allow_extra``) an unknown field. Optional fields that are absent are
    added as nulls so every layer of a class has the same columns.
    """
    if isinstance(fc, str):
        fc = feature_class(fc)
    cols = [c for c in gdf.columns if c != gdf.geometry.name]
    unknown = [c for c in cols if c not in fc.field_names]
    if unknown and not allow_extra:
        raise FieldError(
            f"layer {fc.name!r}: unknown field(s) {unknown}; the class has {fc.field_names}. "
            "Map them with field_map={'source': 'target'} or drop them."
        )
    missing = [name for name in fc.required if name not in cols]
    if missing:
        raise FieldError(
            f"layer {fc.name!r}: required field(s) {missing} missing; present: {cols}. "
            "Add them or map a source field with field_map={'source': 'target'}."
        )
    out = gdf.copy()
    for f in fc.fields:
        if f.name not in out.columns:
            out[f.name] = pd.Series([None] * len(out), index=out.index, dtype=object)
            if f.dtype == "float64":
                out[f.name] = np.nan
            continue
        if f.required and out[f.name].isna().any():
            n = int(out[f.name].isna().sum())
            raise FieldError(f"layer {fc.name!r}: required field {f.name!r} has {n} empty value(s); fill them")
        out[f.name] = _cast(out[f.name], f, fc.name)
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


def field_map_apply(gdf, field_map: Mapping[str, str] | None, keep: Iterable[str] | None = None):
    """Rename source fields to feature-class fields."""
    if not field_map:
        return gdf
    missing = [k for k in field_map if k not in gdf.columns]
    if missing:
        raise FieldError(f"field_map names source field(s) {missing} that the input lacks; it has {list(gdf.columns)}")
    return gdf.rename(columns=dict(field_map))

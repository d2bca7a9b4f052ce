"""Georeferencing: place a model's local coordinates in the twin's CRS.

The chain, first that applies wins (``method="auto"``):

1. ``map_conversion``: IFC4 IfcMapConversion + IfcProjectedCRS, or the IFC2X3
   ``ePSet_MapConversion`` / ``ePSet_ProjectedCRS`` property sets. The project
   length unit is applied (a model in millimetres that omits ``Scale`` still
   lands right); the map CRS is reprojected to the twin CRS with pyproj.
2. ``site``: IfcSite RefLatitude / RefLongitude / RefElevation with the model
   context's TrueNorth, through a local tangent plane at the site origin.
3. ``anchor``: an :class:`Anchor` given by the caller (a point in the twin CRS
   for the model origin and the rotation of the model's x axis).

Whatever the source, the result is a :class:`Georeference`: a 2D affine map
(local metres -> twin CRS) fitted exactly at three points around the model
(sub-millimetre over a building's extent) plus a height offset.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from twin_core.errors import CRSError, GeoreferenceError

__all__ = ["Anchor", "Georeference", "georeference", "METHODS"]

METHODS = ("auto", "map_conversion", "site", "anchor")


@dataclass(frozen=True)
class Anchor:
    """Where the caller puts a model that does not say where it is.

    Parameters
    ----------
    x, y : float
        Position of the model origin (local 0, 0) in ``crs`` (default: the twin CRS).
    z : float, optional
        Height of the model's 0.00 level (m). Left out (None), it reads 0.0 and :attr:`z_given` is False: an
        import into a twin with a terrain (:func:`bim_import.import_ifc`) then puts the model on the ground,
        at the DEM's height under ``x, y``.
    rotation_deg : float
        Angle of the model's x axis, counter-clockwise from grid east (degrees).
    crs : str, optional
        CRS of ``x, y`` if not the twin's.

    Examples
    --------
    >>> Anchor(500000.0, 3400000.0).z, Anchor(500000.0, 3400000.0).z_given
    (0.0, False)
    >>> Anchor(500000.0, 3400000.0, 0.0).z_given
    True
    """

    x: float
    y: float
    z: float | None = None
    rotation_deg: float = 0.0
    crs: str | None = None
    #: whether the caller gave ``z`` (set from it; not an argument)
    z_given: bool = field(init=False, repr=False, compare=False, default=True)

    def __post_init__(self):
        object.__setattr__(self, "z_given", self.z is not None)
        if self.z is None:
            object.__setattr__(self, "z", 0.0)


@dataclass(frozen=True)
class Georeference:
    """Local model metres -> twin CRS.

    ``X = a*x + b*y + c``, ``Y = d*x + e*y + f``, ``Z = z + z0``.
    """

    crs: str
    method: str
    a: float
    b: float
    c: float
    d: float
    e: float
    f: float
    z0: float = 0.0
    details: dict = field(default_factory=dict)

    @property
    def matrix(self) -> np.ndarray:
        return np.array([[self.a, self.b, self.c], [self.d, self.e, self.f], [0.0, 0.0, 1.0]])

    @property
    def rotation_deg(self) -> float:
        """Angle of the model x axis counter-clockwise from grid east."""
        return math.degrees(math.atan2(self.d, self.a))

    @property
    def scale(self) -> float:
        return math.hypot(self.a, self.d)

    def apply_xy(self, xy: np.ndarray) -> np.ndarray:
        xy = np.asarray(xy, dtype=np.float64)
        out = np.empty_like(xy)
        out[..., 0] = self.a * xy[..., 0] + self.b * xy[..., 1] + self.c
        out[..., 1] = self.d * xy[..., 0] + self.e * xy[..., 1] + self.f
        return out

    def apply(self, xyz: np.ndarray) -> np.ndarray:
        """Transform (..., 3) local points to the twin CRS."""
        xyz = np.asarray(xyz, dtype=np.float64)
        out = np.empty_like(xyz)
        out[..., :2] = self.apply_xy(xyz[..., :2])
        out[..., 2] = xyz[..., 2] + self.z0
        return out

    def inverse_xy(self, XY: np.ndarray) -> np.ndarray:
        m = np.linalg.inv(self.matrix)
        XY = np.asarray(XY, dtype=np.float64)
        out = np.empty_like(XY)
        out[..., 0] = m[0, 0] * XY[..., 0] + m[0, 1] * XY[..., 1] + m[0, 2]
        out[..., 1] = m[1, 0] * XY[..., 0] + m[1, 1] * XY[..., 1] + m[1, 2]
        return out

    def to_dict(self) -> dict:
        return {"crs": self.crs, "method": self.method, "affine": [self.a, self.b, self.c, self.d, self.e, self.f],
                "z0": self.z0, "rotation_deg": self.rotation_deg, "scale": self.scale, **self.details}

    @classmethod
    def identity(cls, crs: str = "LOCAL") -> "Georeference":
        return cls(crs, "identity", 1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0)


def _fit(fn, half: float, origin=(0.0, 0.0)):
    """Affine through three exact points: origin, origin+half*x, origin+half*y."""
    ox, oy = origin
    pts = np.array([[ox, oy], [ox + half, oy], [ox, oy + half]])
    XY = np.asarray(fn(pts), dtype=np.float64)
    if not np.all(np.isfinite(XY)):
        return None
    a = (XY[1, 0] - XY[0, 0]) / half
    d = (XY[1, 1] - XY[0, 1]) / half
    b = (XY[2, 0] - XY[0, 0]) / half
    e = (XY[2, 1] - XY[0, 1]) / half
    c = XY[0, 0] - a * ox - b * oy
    f = XY[0, 1] - d * ox - e * oy
    return tuple(float(v) for v in (a, b, c, d, e, f))


def _georef_error(problem: str, advice: str = "", in_model: str = "", sep: str = "; ") -> GeoreferenceError:
    """A GeoreferenceError reading ``problem; advice``, with ``.problem`` holding the problem alone: where the
    caller's anchor places the model instead, the warning says what was wrong with the file's own georeference
    without the advice (which offers the anchor the caller gave). ``.in_model`` says what to fix in the model's
    file itself ("" where nothing there is wrong): the map's upload, whose user places a model by picking its
    site rather than with ``anchor=`` or ``--anchor``, leads with that and adds only this
    (:func:`viewer.routers.bim._run_check`)."""
    exc = GeoreferenceError(f"{problem}{sep}{advice}" if advice else problem)
    exc.problem = problem
    exc.in_model = in_model
    return exc


def _check_in_area(twin, lon: float, lat: float, what: str) -> None:
    aou = twin.area_of_use
    if aou is None:
        return
    w, s, e, n = aou.bounds
    margin = 3.0
    inside_lon = (w - margin <= lon <= e + margin) if w <= e else (lon >= w - margin or lon <= e + margin)
    if not (inside_lon and s - margin <= lat <= n + margin):
        raise _georef_error(
            f"the model's {what} is at lon {lon:.5f}, lat {lat:.5f}, outside the area of the twin CRS "
            f"{twin.to_string()} ({aou.name}, lon {w}..{e}, lat {s}..{n})",
            "open or create a twin whose CRS covers the site (e.g. its UTM zone), or place the model in "
            "this twin with anchor=Anchor(x, y, rotation_deg=...) (CLI: --anchor X,Y[,Z[,ROT]])")


def _map_crs(name: str | None, datum: str | None):
    from pyproj import CRS

    if not name:
        raise _georef_error(
            "the IfcMapConversion's IfcProjectedCRS has no Name (it must name the map CRS, e.g. 'EPSG:4544')",
            "fix the model, or use method='site' (IfcSite RefLatitude/RefLongitude) or an anchor",
            "name the map CRS in its IfcProjectedCRS, e.g. 'EPSG:4544'")
    try:
        return CRS.from_user_input(name.strip())
    except Exception:
        raise _georef_error(
            f"the IfcProjectedCRS name {name!r} (datum {datum!r}) is not a CRS pyproj knows",
            "name it like 'EPSG:4544', or use method='site' (IfcSite RefLatitude/RefLongitude) or an anchor",
            "name its IfcProjectedCRS like 'EPSG:4544'") from None


def _from_map_conversion(g: dict, twin, half: float) -> Georeference:
    from pyproj import Transformer

    mc = g["map_conversion"]
    unit = float(g.get("length_unit_m", 1.0))
    map_unit = float(mc.get("map_unit_m") or 1.0)
    ratio = unit / map_unit  # map units per project unit from the units alone
    scale = mc.get("scale")
    if scale is None:
        total = ratio  # Scale omitted: the unit conversion still applies
    elif ratio != 1.0 and abs(scale - ratio) <= 1e-6 * ratio:
        total = scale  # Scale already is the unit conversion
    else:
        total = scale * ratio
    k = total / unit  # map units per local metre
    ax, ay = mc["x_axis_abscissa"], mc["x_axis_ordinate"]
    n = math.hypot(ax, ay) or 1.0
    cos, sin = ax / n, ay / n
    e0, n0 = mc["eastings"], mc["northings"]
    src = _map_crs(mc.get("crs_name"), mc.get("geodetic_datum"))

    def to_map(xy):
        x, y = xy[:, 0], xy[:, 1]
        return np.column_stack([e0 + k * (cos * x - sin * y), n0 + k * (sin * x + cos * y)])

    if src.equals(twin):
        fn = to_map
    else:
        geo = Transformer.from_crs(src, "EPSG:4326", always_xy=True)
        lon, lat = geo.transform(e0, n0)
        _check_in_area(twin, lon, lat, "map position")
        tr = Transformer.from_crs(src, twin, always_xy=True)

        def fn(xy):
            m = to_map(xy)
            X, Y = tr.transform(m[:, 0], m[:, 1])
            return np.column_stack([X, Y])

    coef = _fit(fn, half)
    if coef is None:
        raise _georef_error(f"the map position cannot be projected into {twin.to_string()}", "check the CRS names",
                            "check its IfcProjectedCRS name")
    z0 = mc.get("orthogonal_height", 0.0) * map_unit
    return Georeference(twin.to_string(), "map_conversion", *coef, z0=z0,
                        details={"source_crs": src.to_string(), "map_scale": total, "unit_m": unit,
                                 "source": mc.get("source", "IfcMapConversion")})


def _from_site(g: dict, twin, half: float) -> Georeference:
    from pyproj import Geod, Transformer

    site = g["site"]
    lat, lon = site["lat"], site["lon"]
    _check_in_area(twin, lon, lat, "IfcSite RefLatitude/RefLongitude")
    tn = g.get("true_north") or [0.0, 1.0]
    nx, ny = tn
    nn = math.hypot(nx, ny) or 1.0
    north = np.array([nx / nn, ny / nn])
    east = np.array([north[1], -north[0]])  # north rotated 90 degrees clockwise
    ox, oy = site["origin_m"][:2]
    geod = Geod(ellps="WGS84")
    tr = Transformer.from_crs("EPSG:4326", twin, always_xy=True)

    def fn(xy):
        d = np.asarray(xy) - np.array([ox, oy])
        de = d @ east
        dn = d @ north
        dist = np.hypot(de, dn)
        az = np.degrees(np.arctan2(de, dn))
        lons, lats, _ = geod.fwd(np.full(len(d), lon), np.full(len(d), lat), az, dist)
        X, Y = tr.transform(lons, lats)
        return np.column_stack([X, Y])

    coef = _fit(fn, half, origin=(ox, oy))
    if coef is None:
        raise _georef_error(f"the IfcSite position cannot be projected into {twin.to_string()}",
                            "check the IfcSite RefLatitude/RefLongitude", "check its IfcSite RefLatitude/RefLongitude")
    z0 = site["elevation_m"] - site["origin_m"][2]
    return Georeference(twin.to_string(), "site", *coef, z0=z0,
                        details={"lat": lat, "lon": lon, "true_north": tn, "site_origin_m": site["origin_m"]})


def _from_anchor(anchor: Anchor, twin) -> Georeference:
    from pyproj import CRS, Transformer

    try:
        x, y, z, rot_deg = (float(v) for v in (anchor.x, anchor.y, anchor.z, anchor.rotation_deg))
    except (TypeError, ValueError):
        raise GeoreferenceError(f"the anchor {anchor} must hold numbers x, y, z, rotation_deg") from None
    if not all(math.isfinite(v) for v in (x, y, z, rot_deg)):
        raise GeoreferenceError(f"the anchor (x {x}, y {y}, z {z}, rotation_deg {rot_deg}) must be finite numbers")
    rot = math.radians(rot_deg)
    if anchor.crs is not None:
        try:
            acrs = CRS.from_user_input(anchor.crs)
        except Exception:
            raise CRSError(f"the anchor's crs {anchor.crs!r} is not a CRS pyproj knows; name it like 'EPSG:4544'") \
                from None
        if not acrs.equals(twin):
            tr = Transformer.from_crs(acrs, twin, always_xy=True)
            x, y = tr.transform(x, y)
    if not (math.isfinite(x) and math.isfinite(y)):
        raise GeoreferenceError(f"the anchor ({anchor.x}, {anchor.y}) cannot be placed in {twin.to_string()}")
    c, s = math.cos(rot), math.sin(rot)
    return Georeference(twin.to_string(), "anchor", c, -s, x, s, c, y, z0=z,
                        details={"anchor": [anchor.x, anchor.y, anchor.z, anchor.rotation_deg, anchor.crs]})


def georeference(model_or_georef, twin_crs: str = "EPSG:4544", *, anchor: Anchor | None = None,
                 method: str = "auto", extent_m: float | None = None) -> Georeference:
    """The transform from a model's local metres to the twin CRS.

    Parameters
    ----------
    model_or_georef : BimModel or dict
        A model from :func:`bim_import.read_model` (or its ``georef`` dict).
    twin_crs : str
        The twin's projected CRS (default EPSG:4544, CGCS2000 GK CM105E).
    anchor : Anchor, optional
        Used when the model has no georeference of its own, or one that cannot
        be used in this twin (``method="auto"``, with a warning), or always
        with ``method="anchor"``.
    method : {"auto", "map_conversion", "site", "anchor"}

    Raises
    ------
    GeoreferenceError
        Nothing applies; the message names the options.

    Examples
    --------
    >>> from bim_import.georef import Anchor, georeference
    >>> g = georeference({"length_unit_m": 1.0}, "EPSG:4544", anchor=Anchor(500000.0, 3400000.0, rotation_deg=90))
    >>> g.apply_xy([[10.0, 0.0]]).round(6).tolist()
    [[500000.0, 3400010.0]]
    """
    from twin_core.errors import TwinError

    if method not in METHODS:
        raise GeoreferenceError(f"method must be one of {list(METHODS)}, got {method!r}")
    g = model_or_georef if isinstance(model_or_georef, dict) else model_or_georef.georef
    try:
        from cim.crs import check_projected

        twin = check_projected(twin_crs)
    except CRSError:
        raise
    except TwinError as exc:  # pragma: no cover
        raise GeoreferenceError(str(exc)) from None
    if extent_m is None:
        extent_m = 50.0
        if not isinstance(model_or_georef, dict):
            tri = model_or_georef.all_triangles()
            if len(tri):
                extent_m = float(max(10.0, np.abs(tri[..., :2]).max()))
    half = max(extent_m, 1.0)

    for key, build in (("map_conversion", _from_map_conversion), ("site", _from_site)):
        if method in ("auto", key) and key in g:
            try:
                return build(g, twin, half)
            except GeoreferenceError as exc:
                if method != "auto" or anchor is None:
                    raise
                # the file's own georeference does not fit this twin (e.g. Revit's default site): the caller's
                # anchor places the model instead
                from twin_core.errors import TwinWarning, twin_warn

                twin_warn(f"{getattr(exc, 'problem', exc)}; the model is placed with the anchor given instead",
                          TwinWarning, stacklevel=2)
                return _from_anchor(anchor, twin)
    if method in ("auto", "anchor") and anchor is not None:
        return _from_anchor(anchor, twin)
    found = [k for k in ("map_conversion", "site") if k in g]
    in_model = ("add an IfcMapConversion + IfcProjectedCRS (IFC4) or ePSet_MapConversion (IFC2X3), or set the "
                "IfcSite RefLatitude/RefLongitude/RefElevation and TrueNorth")
    raise _georef_error(
        f"the model cannot be placed with method={method!r}"
        + (f" (it has: {found})" if found else " (it has no IfcMapConversion, no ePSet_MapConversion and no "
                                             "IfcSite RefLatitude/RefLongitude)"),
        "Options: add an IfcMapConversion + IfcProjectedCRS (IFC4) or ePSet_MapConversion (IFC2X3), set the "
        "IfcSite RefLatitude/RefLongitude/RefElevation and TrueNorth, or pass anchor=Anchor(x, y, z, rotation_deg) "
        "(CLI: --anchor X,Y[,Z[,ROT]])", in_model if not found else "", sep=". ")

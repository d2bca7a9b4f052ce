"""Coordinate reference handling: one projected CRS per twin.

The Chengdu default is EPSG:4544 (CGCS2000 / 3-degree Gauss-Kruger CM 105E).

Examples
--------
>>> resolve_crs("EPSG:4544").to_epsg()
4544
>>> resolve_crs(None)
Traceback (most recent call last):
...
twin_core.errors.CRSError: no CRS given: name one, e.g. crs='EPSG:4490' (CGCS2000), 'EPSG:4326' (WGS 84) or 'EPSG:32648' (UTM 48N)
"""

from __future__ import annotations

from typing import Any

from twin_core.errors import CRSError

__all__ = ["DEFAULT_CRS", "AREA_MARGIN_DEG", "MAX_SCALE_ERROR", "resolve_crs", "same_crs", "check_projected",
           "max_scale_error", "is_undefined_crs", "source_crs_of", "to_twin_crs", "transformer", "check_area_of_use",
           "check_in_twin_area", "in_area_of_use", "lonlat_boxes", "looks_like_lonlat"]

DEFAULT_CRS = "EPSG:4544"
_HINT = "name one, e.g. crs='EPSG:4490' (CGCS2000), 'EPSG:4326' (WGS 84) or 'EPSG:32648' (UTM 48N)"


def resolve_crs(crs: Any):
    """A :class:`pyproj.CRS` from anything pyproj understands, or a clear CRSError."""
    from pyproj import CRS
    from pyproj.exceptions import CRSError as ProjCRSError

    if crs is None or (isinstance(crs, str) and not crs.strip()):
        raise CRSError(f"no CRS given: {_HINT}")
    try:
        return CRS.from_user_input(crs)
    except ProjCRSError as exc:
        raise CRSError(f"unknown CRS {crs!r} ({exc}); {_HINT}") from None


def same_crs(a: Any, b: Any) -> bool:
    """Whether ``a`` and ``b`` (anything pyproj understands: ``"EPSG:4544"``, WKT, a CRS) are the same CRS;
    True where either is None (nothing to compare). The one test of CRS equality the checks share.

    >>> same_crs("EPSG:4544", "epsg:4544"), same_crs("EPSG:4544", "EPSG:32648"), same_crs(None, "EPSG:4544")
    (True, False, True)
    """
    if a is None or b is None:
        return True
    return bool(resolve_crs(a).equals(resolve_crs(b)))


def check_projected(crs: Any):
    """The twin CRS must be projected in metres."""
    c = resolve_crs(crs)
    if not c.is_projected:
        raise CRSError(
            f"the twin CRS must be projected in metres, {c.to_string()} is geographic; "
            "use EPSG:4544 (CGCS2000 GK CM105E, Chengdu) or another projected CRS"
        )
    units = {a.unit_name for a in c.axis_info}
    if not units <= {"metre", "meter"}:
        raise CRSError(f"the twin CRS must use metres, {c.to_string()} uses {sorted(units)}")
    worst = max_scale_error(c)
    if worst is not None and worst[0] > MAX_SCALE_ERROR:
        err, lon, lat = worst
        raise CRSError(
            f"the twin CRS {c.to_string()} ({c.name}) distorts distances by up to {err:.1%} over its area of use "
            f"(scale factor {1 + err:.3f} at lon {lon:.1f}, lat {lat:.1f}; more than the {MAX_SCALE_ERROR:.0%} a "
            "twin's lengths and areas allow): use a conformal CRS of the city's own zone, e.g. EPSG:4544 (CGCS2000 "
            "3-degree Gauss-Kruger CM 105E) for Chengdu, the CGCS2000 3-degree zone of the area elsewhere in China "
            "(EPSG:4534..4554, central meridians 75E..135E) or the UTM zone (EPSG:326NN)")
    return c


#: the largest scale error (|k - 1|, lengths) a twin CRS may have anywhere in its area of use. A 3-degree
#: Gauss-Kruger zone stays under 0.03 % (1.5 degrees from its central meridian), UTM under 0.1 % (k0 = 0.9996 at the
#: central meridian, about 1.001 at a 6-degree zone's edge on the equator; Snyder, Map Projections: A Working Manual,
#: USGS PP 1395, p. 57-58); 1 % is ten times that, so any zone grid passes, while Web Mercator (EPSG:3857, 1.163 at
#: Chengdu's 30.7 N, 1.16 ** 2 in area) is refused
MAX_SCALE_ERROR = 0.01

#: points a side of the grid over a CRS's area of use that :func:`max_scale_error` samples
_SCALE_GRID = 15


def max_scale_error(crs: Any):
    """``(error, lon, lat)``: the largest ``|k - 1|`` of a projected CRS's meridional and parallel scale factors
    (pyproj ``Proj.get_factors``) on a grid over its area of use, and where; None for a CRS without a declared
    area of use (a custom one: nothing to sample) or whose factors cannot be computed.

    >>> round(max_scale_error("EPSG:4544")[0], 4), max_scale_error("EPSG:3857")[0] > 1
    (0.0003, True)
    """
    import numpy as np
    from pyproj import Proj

    c = resolve_crs(crs)
    aou = c.area_of_use
    if not c.is_projected or aou is None:
        return None
    w, s, e, n = aou.bounds
    if e < w:  # crosses 180 degrees
        e += 360.0
    lon, lat = np.meshgrid(np.linspace(w, e, _SCALE_GRID), np.linspace(s, n, _SCALE_GRID))
    lon = ((lon.ravel() + 180.0) % 360.0) - 180.0
    lat = lat.ravel()
    try:
        f = Proj(c).get_factors(lon, lat, errcheck=False)
        k = np.concatenate([np.asarray(f.meridional_scale, dtype="float64"),
                            np.asarray(f.parallel_scale, dtype="float64")])
    except Exception:  # noqa: BLE001 - a projection pyproj cannot give factors for: nothing to check
        return None
    err = np.abs(k - 1.0)
    err[~np.isfinite(err)] = -1.0  # points outside the projection's domain say nothing of its distortion
    i = int(np.argmax(err))
    if err[i] < 0:
        return None
    return float(err[i]), float(lon[i % lon.size]), float(lat[i % lat.size])


#: geographic CRSs in lon/lat degrees that differ by centimetres (WGS 84 and CGCS2000): data labelled with one
#: (a .prj that says WGS 84, as many tools write by default) may be declared in the other with ``--crs``
_LONLAT_TWINS = frozenset({4326, 4490})

#: names GDAL gives the undefined SRSs of a GeoPackage (srs_id 0 and -1, written by e.g. ``ogr2ogr -f GPKG out.gpkg
#: nocrs.shp``): they state no CRS at all
UNDEFINED_SRS_NAMES = frozenset({"Undefined geographic SRS", "Undefined Cartesian SRS"})


def is_undefined_crs(crs: Any) -> bool:
    """Whether ``crs`` is None or a GeoPackage's undefined SRS (srs_id 0 or -1): a file that states no CRS.

    >>> is_undefined_crs(None), is_undefined_crs("EPSG:4544")
    (True, False)
    """
    if crs is None:
        return True
    c = resolve_crs(crs)
    return c.name in UNDEFINED_SRS_NAMES and c.to_epsg() is None


def source_crs_of(file_crs: Any, source_crs: Any = None, *, stated: bool = True):
    """The CRS to read an input's coordinates in: what the file states (``file_crs``), else ``source_crs``
    (``--crs`` / ``crs=``).

    ``stated=False`` says ``file_crs`` is a reader's default, not the file's word (a GeoJSON without a ``crs``
    member, which GDAL reads as EPSG:4326 by RFC 7946): ``source_crs`` then wins. A file that states another CRS
    than ``source_crs`` is refused, except WGS 84 against CGCS2000 lon/lat (:data:`_LONLAT_TWINS`), where the
    declaration is the user's to make.

    >>> source_crs_of("EPSG:4326", "EPSG:4544", stated=False).to_epsg()
    4544
    >>> source_crs_of("EPSG:4326", "EPSG:4490").to_epsg()  # CGCS2000 declared on WGS 84 lon/lat: the user's word
    4490
    """
    if is_undefined_crs(file_crs) or not stated:
        if source_crs is not None:
            return resolve_crs(source_crs)
        if is_undefined_crs(file_crs):
            raise CRSError(f"the input states no CRS (no .prj, no crs member, or an undefined SRS such as a "
                           f"GeoPackage's srs_id 0 or -1): pass the CRS its coordinates are in with --crs "
                           f"(crs=...): {_HINT}, or 'EPSG:4544' for metres in Chengdu's Gauss-Kruger zone")
        return resolve_crs(file_crs)
    file_crs = resolve_crs(file_crs)
    if source_crs is None:
        return file_crs
    given = resolve_crs(source_crs)
    if given.equals(file_crs) or {given.to_epsg(), file_crs.to_epsg()} <= _LONLAT_TWINS:
        return given
    raise CRSError(
        f"the input says its CRS is {file_crs.to_string()} but crs={source_crs!r} (CLI: --crs) was given; "
        "drop the argument or fix the file"
    )


def to_twin_crs(gdf, twin_crs: Any, source_crs: Any = None, *, stated: bool = True):
    """Reproject a GeoDataFrame into the twin CRS.

    A frame without a CRS (or with a GeoPackage's undefined one) is refused unless ``source_crs`` names one;
    ``stated=False``: the frame's CRS is a reader's default that ``source_crs`` overrides
    (:func:`source_crs_of`).
    """
    target = resolve_crs(twin_crs)
    src = source_crs_of(gdf.crs, source_crs, stated=stated)
    if gdf.crs is None or not src.equals(gdf.crs):
        gdf = gdf.set_crs(src, allow_override=True)
    if gdf.crs.equals(target):
        return gdf.set_crs(target, allow_override=True)
    return gdf.to_crs(target)


def transformer(src: Any, dst: Any):
    from pyproj import Transformer

    return Transformer.from_crs(resolve_crs(src), resolve_crs(dst), always_xy=True)


#: how far (degrees) data may reach beyond its CRS's area of use before it is refused, as in
#: bim_import.georef: a dataset may run a little past a zone's edge
AREA_MARGIN_DEG = 3.0


def fmt_box(b) -> str:
    """Bounds as ``(xmin, ymin, xmax, ymax)`` with up to 10 significant digits."""
    return "(" + ", ".join(f"{float(v):.10g}" for v in b) + ")"


#: points each edge of a box is sampled at (corners included) when it is taken to lon/lat, as PROJ's
#: ``proj_trans_bounds`` with its recommended ``densify_pts=21``: a projected CRS bends a box's edges, so
#: the corners alone (or the edge midpoints) can miss where an edge reaches furthest
DENSIFY_PTS = 21
#: boxes taken to lon/lat per vectorised call (bounds the memory: 4 * (DENSIFY_PTS + 1) points a box)
_CHUNK = 8192


def lonlat_boxes(bounds, crs, densify_pts: int = DENSIFY_PTS):
    """Each box (a row ``(xmin, ymin, xmax, ymax)`` in ``crs``) as the lon/lat box its densified edges span.

    The one sampling every area check uses (an import's and a scenario edit's): each edge is sampled at
    ``densify_pts`` (:data:`DENSIFY_PTS`) interior points plus its corners, transformed in one vectorised
    call, and the extremes taken. A row is NaN where the box is not finite or any of its points does not transform (outside
    the CRS's domain). The bounds themselves for a geographic CRS.

    Examples
    --------
    >>> lonlat_boxes([[409907.0, 3393657.0] * 2], resolve_crs("EPSG:4544")).round(2).tolist()
    [[104.06, 30.66, 104.06, 30.66]]
    """
    import numpy as np

    b = np.asarray(bounds, dtype="float64").reshape(-1, 4)
    crs = resolve_crs(crs)
    finite = np.isfinite(b).all(axis=1)
    if crs.is_geographic:
        return np.where(finite[:, None], b, np.nan)
    out = np.full(b.shape, np.nan)
    t = np.linspace(0.0, 1.0, int(densify_pts) + 2)[:-1]  # each edge from its start corner, its end the next's
    fwd = t[None, :]
    try:
        to_lonlat = transformer(crs, "EPSG:4326")
    except Exception:  # noqa: BLE001 - no transformation to lon/lat at all
        return out
    rows = np.flatnonzero(finite)
    for lo in range(0, len(rows), _CHUNK):
        r = rows[lo:lo + _CHUNK]
        x0, y0, x1, y1 = (b[r, k][:, None] for k in range(4))
        dx, dy = x1 - x0, y1 - y0
        # bottom (west to east), right (south to north), top (east to west), left (north to south)
        xs = np.concatenate([x0 + dx * fwd, np.broadcast_to(x1, (len(r), t.size)), x1 - dx * fwd,
                             np.broadcast_to(x0, (len(r), t.size))], axis=1)
        ys = np.concatenate([np.broadcast_to(y0, (len(r), t.size)), y0 + dy * fwd,
                             np.broadcast_to(y1, (len(r), t.size)), y1 - dy * fwd], axis=1)
        try:
            lon, lat = to_lonlat.transform(xs, ys, errcheck=False)
        except Exception:  # noqa: BLE001 - pyproj refuses points outside its domain in several ways
            continue
        lon, lat = np.asarray(lon, dtype="float64"), np.asarray(lat, dtype="float64")
        ok = np.isfinite(lon).all(axis=1) & np.isfinite(lat).all(axis=1)
        with np.errstate(invalid="ignore"):
            box = np.stack([lon.min(axis=1), lat.min(axis=1), lon.max(axis=1), lat.max(axis=1)], axis=1)
        out[r[ok]] = box[ok]
    return out


def lonlat_box(bounds, crs):
    """One box in lon/lat (:func:`lonlat_boxes`, the bounds themselves for a geographic CRS); None where it does
    not transform."""
    import numpy as np

    box = lonlat_boxes(np.asarray(bounds, dtype="float64").reshape(1, 4), crs)[0]
    return tuple(float(v) for v in box) if np.all(np.isfinite(box)) else None


def meets_area(box, aou):
    """Whether a lon/lat box meets a CRS's area of use grown by the margin (an area may cross 180 degrees).

    ``box`` may also be four arrays (one box a row, as ``shapely.bounds(...).T``): an array of booleans then.
    """
    w, s, e, n = aou.bounds
    m = AREA_MARGIN_DEG
    lon_ok = (box[2] >= w - m) & (box[0] <= e + m) if w <= e else (box[2] >= w - m) | (box[0] <= e + m)
    return lon_ok & (box[3] >= s - m) & (box[1] <= n + m)


def area_text(crs) -> str:
    """``"China - 103.5°E to 106.5°E: lon 103.5..106.5, lat 21.5..42.5"``: a CRS's area of use, for messages."""
    aou = crs.area_of_use
    w, s, e, n = aou.bounds
    return f"{aou.name}: lon {w}..{e}, lat {s}..{n}"


def in_area_of_use(bounds, crs):
    """For each box (a row ``(xmin, ymin, xmax, ymax)`` in ``crs``): whether it meets the area where ``crs`` is
    defined (its area of use, grown by :data:`AREA_MARGIN_DEG`), the test :func:`check_area_of_use` makes of an
    import. Boxes that do not transform to lon/lat are outside; all are inside when ``crs`` declares no area
    (a custom CRS) and where a box is not finite (nothing to compare: other checks refuse those).

    Examples
    --------
    >>> chengdu, lonlat = [409907.0, 3393657.0] * 2, [104.06, 30.66] * 2  # the same place, in metres and degrees
    >>> in_area_of_use([chengdu, lonlat], resolve_crs("EPSG:4544")).tolist()
    [True, False]
    """
    import numpy as np

    b = np.asarray(bounds, dtype="float64").reshape(-1, 4)
    crs = resolve_crs(crs)
    aou = crs.area_of_use
    finite = np.isfinite(b).all(axis=1)
    out = np.ones(len(b), dtype=bool)
    if aou is None or not finite.any():
        return out
    f = b[finite]

    def meets(box):
        ok = np.isfinite(box).all(axis=1)
        return ok & meets_area(np.where(ok[:, None], box, 0.0).T, aou)

    # the corners first (4 points a box, not 88): the densified box holds the corners' box, so a box whose
    # corners meet the area meets it; only the others (near or past an edge of the area) are densified
    res = meets(lonlat_boxes(f, crs, densify_pts=0))
    if not res.all():
        res[~res] = meets(lonlat_boxes(f[~res], crs))
    out[finite] = res
    return out


def check_area_of_use(bounds, crs) -> None:
    """Refuse data whose bounds lie clearly outside the area where ``crs`` is defined (its area of use,
    grown by a margin: :func:`in_area_of_use`, the test a scenario edit makes too): the coordinates do not belong
    to that CRS, so the CRS given or in the file is wrong."""
    if in_area_of_use(bounds, crs)[0]:
        return  # inside, no declared area (a custom CRS), or no coordinates: nothing to compare
    box = lonlat_box(bounds, crs)
    lonlat = f" (lon/lat {fmt_box(box)})" if box is not None and not crs.is_geographic else ""
    raise CRSError(
        f"the data's bounds {fmt_box(bounds)}{lonlat} lie outside the area of its CRS {crs.to_string()} "
        f"({area_text(crs)}), so the coordinates are not in that CRS. Check --crs (crs=...) "
        "or the file's .prj; e.g. coordinates in metres need a projected CRS such as EPSG:4544 or EPSG:32648, "
        "not a lon/lat one such as EPSG:4490"
    )


def check_in_twin_area(bounds, src_crs, twin_crs) -> None:
    """Refuse data valid in its own CRS but outside the area the twin's CRS covers (with the same margin):
    e.g. British National Grid data given to a Chengdu twin would land ~9,000 km away, distorted."""
    import numpy as np

    aou = twin_crs.area_of_use if twin_crs is not None else None
    box = lonlat_box(bounds, src_crs) if np.all(np.isfinite(bounds)) else None
    if aou is None or box is None or not (abs(box[0]) <= 180 and abs(box[2]) <= 180 and abs(box[1]) <= 90
                                             and abs(box[3]) <= 90):
        return  # not lon/lat at all: the finite-coordinates check says why
    if meets_area(box, aou):
        return
    raise CRSError(
        f"the data lies at lon/lat {fmt_box(box)} (read in its CRS {src_crs.to_string()}), outside the area the "
        f"twin's CRS {twin_crs.to_string()} covers ({area_text(twin_crs)}); it is not data of "
        "this city. Check the file, or its CRS (--crs / crs= or the file's .prj)"
    )


def looks_like_lonlat(bounds) -> bool:
    """(xmin, ymin, xmax, ymax) within -180..180 / -90..90: degrees where the twin wants metres.

    >>> looks_like_lonlat((104.0, 30.6, 104.1, 30.7)), looks_like_lonlat((409000, 3390000, 409100, 3390100))
    (True, False)
    """
    try:
        xmin, ymin, xmax, ymax = (float(v) for v in bounds)
    except (TypeError, ValueError):
        return False
    return all(-180 <= v <= 180 for v in (xmin, xmax)) and all(-90 <= v <= 90 for v in (ymin, ymax))

"""An in-memory georeferenced raster: a 2-D array plus its affine transform.

Examples
--------
>>> import numpy as np
>>> from affine import Affine
>>> r = Raster(np.zeros((3, 4), "float32"), Affine(5, 0, 1000, 0, -5, 2000), "EPSG:4544")
>>> r.shape, r.res, r.bounds
((3, 4), (5.0, 5.0), (1000.0, 1985.0, 1020.0, 2000.0))
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from affine import Affine

from twin_core.errors import RasterError

__all__ = ["Raster", "RasterStack", "Window"]


@dataclass(frozen=True)
class Window:
    """A rectangular block of cells: row/col offset and size."""

    row_off: int
    col_off: int
    height: int
    width: int

    def slices(self) -> tuple[slice, slice]:
        return slice(self.row_off, self.row_off + self.height), slice(self.col_off, self.col_off + self.width)


@dataclass
class Raster:
    """A single-band raster.

    ``data`` is (rows, cols); ``transform`` maps (col, row) to (x, y) of the
    cell's upper-left corner (north-up, GDAL convention).
    """

    data: np.ndarray
    transform: Affine
    crs: str
    nodata: float | None = None
    unit: str | None = None
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.data = np.asarray(self.data)
        if self.data.ndim != 2:
            raise RasterError(f"raster data must have shape (rows, cols), got {self.data.shape}")
        if not isinstance(self.transform, Affine):
            self.transform = Affine(*tuple(self.transform)[:6])
        if self.transform.b != 0 or self.transform.d != 0:
            raise RasterError("rotated rasters are not supported; warp to a north-up grid first")
        if self.transform.e >= 0:
            raise RasterError("raster transform must be north-up (negative y resolution)")
        if self.transform.a <= 0:
            raise RasterError("raster transform must run west to east (positive x resolution), got a = "
                              f"{self.transform.a}; flip the columns (data[:, ::-1]) and the transform")

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.data.shape)  # type: ignore[return-value]

    @property
    def res(self) -> tuple[float, float]:
        return (float(self.transform.a), float(-self.transform.e))

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        rows, cols = self.shape
        x0, y1 = self.transform.c, self.transform.f
        return (float(x0), float(y1 + rows * self.transform.e), float(x0 + cols * self.transform.a), float(y1))

    @property
    def extent(self) -> tuple[float, float, float, float]:
        """(xmin, xmax, ymin, ymax): what matplotlib's ``imshow(r.masked(), extent=r.extent)`` wants.

        >>> Raster(np.zeros((2, 3)), Affine(5, 0, 100, 0, -5, 210), "EPSG:4544").extent
        (100.0, 115.0, 200.0, 210.0)
        """
        xmin, ymin, xmax, ymax = self.bounds
        return (xmin, xmax, ymin, ymax)

    def __repr__(self) -> str:
        """One line, not the array (a notebook printed every cell of a 710 x 762 depth grid).

        >>> Raster(np.zeros((2, 3), "float32"), Affine(5, 0, 100, 0, -5, 210), "EPSG:4544", unit="m")
        <Raster 2x3 float32 m EPSG:4544 bounds=(100.0, 200.0, 115.0, 210.0) cell=5 m>
        """
        unit = f" {self.unit}" if self.unit else ""
        nodata = f" nodata={self.nodata}" if self.nodata is not None else ""
        rx, ry = self.res
        cell = f"{rx:g} m" if rx == ry else f"{rx:g}x{ry:g} m"
        return (f"<Raster {self.shape[0]}x{self.shape[1]} {self.data.dtype}{unit} {self.crs} "
                f"bounds={tuple(round(v, 3) for v in self.bounds)} cell={cell}{nodata}>")

    #: above this many cells the value range shown in a notebook is taken from a regular sample of them
    #: (a notebook shows an object more than once; the whole grid is not scanned each time)
    RANGE_FULL_CELLS = 25_000_000

    def value_range(self) -> tuple[float, float, int, bool] | None:
        """(min, max, valid cells, sampled) of the cells that are not nodata or NaN, None when there are none.

        Without a copy of the data: a boolean mask beside it. Above :attr:`RANGE_FULL_CELLS` cells, from an
        even sample of rows and columns (``sampled`` is True, and the count is of the sample).

        >>> r = Raster(np.array([[1, -9999], [np.nan, 4]], "float32"), Affine(5, 0, 0, 0, -5, 10), "EPSG:4544",
        ...            nodata=-9999)
        >>> r.value_range()
        (1.0, 4.0, 2, False)
        """
        a, sampled = self.data, False
        if a.size > self.RANGE_FULL_CELLS:
            step = int(np.ceil(np.sqrt(a.size / self.RANGE_FULL_CELLS)))
            a, sampled = a[::step, ::step], True
        if a.dtype.kind not in "biuf":
            return None
        if a.dtype.kind == "b":
            a = a.view(np.uint8)
        valid = np.isfinite(a) if a.dtype.kind == "f" else np.ones(a.shape, dtype=bool)
        if self.nodata is not None and not np.isnan(float(self.nodata)):
            valid &= a != self.nodata
        n = int(np.count_nonzero(valid))
        if not n:
            return None
        lo = np.min(a, where=valid, initial=np.inf if a.dtype.kind == "f" else np.iinfo(a.dtype).max)
        hi = np.max(a, where=valid, initial=-np.inf if a.dtype.kind == "f" else np.iinfo(a.dtype).min)
        return float(lo), float(hi), n, sampled

    def _repr_html_(self) -> str:
        """What a notebook shows of a raster: a table of its shape, cell size, CRS, bounds, nodata, unit and
        value range (never the array; see :meth:`value_range` for how the range is found on a huge grid)."""
        import html

        esc = html.escape
        try:
            rows_, cols_ = self.shape
            rx, ry = self.res
            rng = self.value_range()
        except Exception:  # noqa: BLE001 - a notebook shows something whatever the data holds
            return f"<div>{esc(repr(self))}</div>"
        unit = f" {self.unit}" if self.unit else ""
        if rng is None:
            values = "(no valid cells: all nodata or NaN)"
        else:
            lo, hi, n, sampled = rng
            values = f"{lo:.6g} to {hi:.6g}{unit}"
            values += (f" (from a sample of {n:,} valid cells)" if sampled
                       else f" ({n:,} of {self.data.size:,} cells valid)")

        def row(k, v):
            return f"<tr><th style='text-align:left'>{esc(k)}</th><td style='text-align:left'>{esc(str(v))}</td></tr>"

        b = self.bounds
        table = [row("shape", f"{rows_:,} rows x {cols_:,} cols ({self.data.dtype})"),
                 row("cell size", f"{rx:g} m" if rx == ry else f"{rx:g} x {ry:g} m"),
                 row("CRS", self.crs),
                 row("bounds", f"xmin {b[0]:.3f}, ymin {b[1]:.3f}, xmax {b[2]:.3f}, ymax {b[3]:.3f}"),
                 row("nodata", "(none)" if self.nodata is None else f"{self.nodata:g}"
                     if isinstance(self.nodata, (int, float, np.number)) else self.nodata),
                 row("unit", self.unit or "(none)"),
                 row("values", values)]
        return (f"<div><b>Raster</b><table>{''.join(table)}</table>"
                "<small>r.data (array), r.masked() (NaN for nodata), r.transform, "
                "plt.imshow(r.masked(), extent=r.extent)</small></div>")

    def masked(self) -> np.ndarray:
        """Data as float with nodata replaced by NaN."""
        out = self.data.astype("float64", copy=True)
        if self.nodata is not None and not np.isnan(self.nodata):
            out[self.data == self.nodata] = np.nan
        return out

    def coords(self) -> tuple[np.ndarray, np.ndarray]:
        """(x of each column's centre, west to east; y of each row's centre, north to south), in the CRS.

        >>> Raster(np.zeros((2, 3)), Affine(5, 0, 100, 0, -5, 210), "EPSG:4544").coords()
        (array([102.5, 107.5, 112.5]), array([207.5, 202.5]))
        """
        rows, cols = self.shape
        return _centres(self.transform, rows, cols)

    def to_xarray(self, name: str | None = None):
        """The raster as an ``xarray.DataArray`` with dims ``("y", "x")`` and cell-centre coordinates.

        Nodata cells become NaN (integer data becomes float); ``attrs`` hold ``crs``, ``units`` (CF's name,
        what xarray's plots label the colour bar with) and ``unit``, ``transform`` (the six GDAL affine
        numbers), ``nodata`` (the value it had before, when it had one) and :attr:`meta`'s plain entries.
        With rioxarray installed the CRS and transform are also written the rioxarray way
        (``da.rio.crs``). Needs xarray (``pip install xarray``).

        Examples
        --------
        >>> r = Raster(np.array([[1, -9999], [3, 4]], "float32"), Affine(5, 0, 100, 0, -5, 210), "EPSG:4544",
        ...            nodata=-9999, unit="m")
        >>> da = r.to_xarray("depth")                                             # doctest: +SKIP
        >>> da.sel(x=107.5, y=207.5).item(), da.attrs["crs"], da.attrs["units"]   # doctest: +SKIP
        (nan, 'EPSG:4544', 'm')
        """
        xr = _xarray("Raster.to_xarray()")
        x, y = self.coords()
        da = xr.DataArray(_as_nan(self.data, self.nodata), dims=("y", "x"), coords={"y": y, "x": x},
                          name=name if name is not None else self.meta.get("name"),
                          attrs=_attrs(self.crs, self.unit, self.transform, self.nodata, self.meta))
        return _with_rio(da, self.crs, self.transform)

    def window(self, w: Window) -> "Raster":
        rs, cs = w.slices()
        if w.row_off < 0 or w.col_off < 0 or w.row_off + w.height > self.shape[0] or w.col_off + w.width > self.shape[1]:
            raise RasterError(f"window {w} lies outside the raster of shape {self.shape}")
        t = self.transform @ Affine.translation(w.col_off, w.row_off)
        return Raster(self.data[rs, cs].copy(), t, self.crs, self.nodata, self.unit, dict(self.meta))

    def window_from_bounds(self, bounds: tuple[float, float, float, float]) -> Window:
        """The cell window covering ``bounds`` (clipped to the raster)."""
        try:
            xmin, ymin, xmax, ymax = (float(v) for v in bounds)
        except (TypeError, ValueError):
            raise RasterError(f"bounds must be four numbers (xmin, ymin, xmax, ymax), got {bounds!r}") from None
        if not np.isfinite([xmin, ymin, xmax, ymax]).all():
            raise RasterError(f"bounds {bounds} are not all finite numbers; give (xmin, ymin, xmax, ymax) in the "
                              f"raster's CRS, e.g. within {self.bounds}")
        inv = ~self.transform
        c0, r0 = inv @ (xmin, ymax)
        c1, r1 = inv @ (xmax, ymin)
        c0, r0 = max(int(np.floor(c0)), 0), max(int(np.floor(r0)), 0)
        c1, r1 = min(int(np.ceil(c1)), self.shape[1]), min(int(np.ceil(r1)), self.shape[0])
        if c1 <= c0 or r1 <= r0:
            raise RasterError(f"bounds {bounds} do not overlap the raster {self.bounds}")
        return Window(r0, c0, r1 - r0, c1 - c0)

    def xy(self, rows, cols) -> tuple[np.ndarray, np.ndarray]:
        """Cell-centre coordinates."""
        rows = np.asarray(rows, dtype="float64") + 0.5
        cols = np.asarray(cols, dtype="float64") + 0.5
        return (self.transform.c + cols * self.transform.a, self.transform.f + rows * self.transform.e)

    def same_grid(self, other: "Raster", tol: float = 1e-6) -> bool:
        return self.shape == other.shape and all(
            abs(a - b) <= tol for a, b in zip(tuple(self.transform)[:6], tuple(other.transform)[:6])
        )


def _centres(transform: Affine, rows: int, cols: int) -> tuple[np.ndarray, np.ndarray]:
    x = transform.c + (np.arange(cols, dtype="float64") + 0.5) * transform.a
    y = transform.f + (np.arange(rows, dtype="float64") + 0.5) * transform.e
    return x, y


def _as_nan(data: np.ndarray, nodata, copy: bool = True) -> np.ndarray:
    """``data`` as float (float32 stays float32; a copy unless ``copy`` is False) with the nodata cells NaN."""
    out = np.array(data, dtype=np.result_type(data.dtype, np.float32), copy=copy or nodata is not None or None)
    if nodata is not None and not np.isnan(float(nodata)):
        out[data == nodata] = np.nan
    return out


def _xarray(what: str):
    try:
        import xarray
    except ImportError as exc:
        raise ImportError(f"{what} needs xarray, which is not installed: pip install xarray "
                          "(rioxarray too, for da.rio)") from exc
    return xarray


def _attrs(crs, unit, transform: Affine, nodata, meta: dict) -> dict:
    """attrs netCDF can write: no None values, only plain scalars, strings and lists of numbers."""
    out = {"crs": str(crs), "transform": [float(v) for v in tuple(transform)[:6]]}
    if unit:
        out["units"] = out["unit"] = str(unit)
    if nodata is not None:
        out["nodata"] = float(nodata)
    for k, v in (meta or {}).items():
        if isinstance(k, str) and k not in out and isinstance(v, (str, int, float)) and not isinstance(v, bool):
            out[k] = v
    return out


def _with_rio(da, crs, transform: Affine):
    """``da`` with the rioxarray CRS and transform written, when rioxarray is installed (never installed here)."""
    import importlib.util

    if importlib.util.find_spec("rioxarray") is None:
        return da
    import rioxarray  # noqa: F401 - registers the .rio accessor

    return da.rio.write_crs(crs).rio.write_transform(transform)


@dataclass
class RasterStack:
    """A stack of rasters on one grid, one per time: a flood's depth snapshots, a crowd's density maps.

    ``data`` is (times, rows, cols), rows from the NORTH (as :class:`Raster`), nodata as NaN; ``times_s`` the
    seconds from the scenario start of each; ``transform``/``crs`` the grid (:meth:`Raster.coords` gives
    the cell centres). ``stack[i]`` is the i-th :class:`Raster`; :meth:`nearest` the one closest to a time;
    :meth:`to_xarray` a ``(time, y, x)`` DataArray.

    Examples
    --------
    >>> s = RasterStack(np.zeros((2, 2, 3), "float32"), Affine(5, 0, 100, 0, -5, 210), "EPSG:4544",
    ...                 times_s=np.array([0.0, 600.0]), unit="m")
    >>> len(s), s.shape, s.nearest(500)[0], s[1]
    (2, (2, 2, 3), 1, <Raster 2x3 float32 m EPSG:4544 bounds=(100.0, 200.0, 115.0, 210.0) cell=5 m>)
    """

    data: np.ndarray
    transform: Affine
    crs: str
    times_s: np.ndarray
    unit: str | None = None
    name: str | None = None
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.data = np.asarray(self.data)
        if self.data.ndim != 3:
            raise RasterError(f"a raster stack's data must have shape (times, rows, cols), got {self.data.shape}")
        self.times_s = np.asarray(self.times_s, dtype="float64").reshape(-1)
        if len(self.times_s) != len(self.data):
            raise RasterError(f"a raster stack needs one time per raster: {len(self.data)} rasters, "
                              f"{len(self.times_s)} times")
        # the grid checks of a Raster (north-up, not rotated), and its transform as an Affine
        self.transform = Raster(np.zeros((1, 1)), self.transform, self.crs).transform

    def __len__(self) -> int:
        return int(self.data.shape[0])

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.data.shape)  # type: ignore[return-value]

    def __getitem__(self, i: int) -> Raster:
        return Raster(self.data[i], self.transform, self.crs, unit=self.unit,
                      meta={**self.meta, "time_s": float(self.times_s[i])})

    def __repr__(self) -> str:
        t = (f" t={self.times_s[0]:g}..{self.times_s[-1]:g} s" if len(self) else "")
        return f"<RasterStack {self.name or ''} {'x'.join(map(str, self.shape))} {self.crs}{t}>".replace("  ", " ")

    def nearest(self, time_s: float) -> tuple[int, float]:
        """(index, time in s) of the raster whose time is closest to ``time_s`` (the earlier one on a tie)."""
        if not len(self):
            raise RasterError("the raster stack is empty: it has no time to pick")
        i = int(np.argmin(np.abs(self.times_s - float(time_s))))
        return i, float(self.times_s[i])

    def to_xarray(self):
        """An ``xarray.DataArray`` with dims ``("time", "y", "x")``: ``time`` in seconds from the scenario
        start (attrs ``units: s``), x/y the cell centres, the attrs of :meth:`Raster.to_xarray`.
        Needs xarray (``pip install xarray``)."""
        xr = _xarray("RasterStack.to_xarray()")
        x, y = _centres(self.transform, self.data.shape[1], self.data.shape[2])
        time = xr.Variable("time", self.times_s, attrs={"units": "s", "long_name": "seconds from the scenario start"})
        da = xr.DataArray(_as_nan(self.data, None, copy=False), dims=("time", "y", "x"), coords={"time": time, "y": y, "x": x},
                          name=self.name, attrs=_attrs(self.crs, self.unit, self.transform, None, self.meta))
        return _with_rio(da, self.crs, self.transform)

"""The local-inertial flood model: inputs validated here, kernels in ``_kernels``."""

from __future__ import annotations

import math
import numbers
import time as _time
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numba
import numpy as np
import pandas as pd

from simulation.flood import _kernels as K
from simulation.flood.forcing import EDGES, BoundaryConditions, Hyetograph, Inflow, RainSeries, RoofRunoff
from simulation.flood.params import FloodParameters
from twin_core.errors import ParameterError, RasterError, StabilityError, TwinWarning, twin_warn
from simulation._display import compact_repr

__all__ = ["FloodModel", "FloodResult", "Gauge"]

ProgressCallback = Callable[[float, float], None]

# finite bed elevations must stay well below the WALL of blocked cells (and no real ground is this far off)
_MAX_ABS_ELEVATION = 1.0e6
_EVENT_EPS = 1e-9  # s: an output due within this of the model time is recorded now
#: s of wall time: run() reports progress at least this often (a 1 % step of a long run took minutes, and a
#: cancelled job, which stops in its progress callback, ran on until then)
PROGRESS_WALL_S = 0.25


def _is_number(v) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, (bool, np.bool_))


#: the CFL factor of the step the de Almeida et al. (2012) theta weighting is scaled to (see
#: ``FloodModel._theta_step``): Bates et al.'s (2010) 0.7, fixed, so that the smoothing per second does not
#: depend on the ``alpha`` a run chose for its steps
_THETA_REF_ALPHA = 0.7


@dataclass
class Gauge:
    """A point where depth, water level and speed are recorded (row/col or x/y)."""

    name: str
    row: int | None = None
    col: int | None = None
    x: float | None = None
    y: float | None = None


@dataclass(repr=False)
class FloodResult:
    """Outputs of a run (arrays on the model grid; NaN = never / not applicable).

    Attributes
    ----------
    max_depth : (ny, nx) m
    max_velocity : (ny, nx) m/s, the cell's speed made of its faces' velocities ``q / h_f`` (``h_f`` the face's
        flow depth, the one the momentum equation uses; faces where ``h_f <= 10 hmin``, 1 cm by default, count
        0, as for the time step): ``u`` the mean of its two x faces', ``v`` of its two y faces', speed
        ``hypot(u, v)``, where the cell is wet (deeper than ``hmin``); as itzi does. The discharge over a bank
        divided by the depth of the thin sheet in the cell below it gave 15 m/s there (24-213 m/s without the
        1 cm limit).
    time_of_wetting : (ny, nx) s from start when depth first exceeded ``wet_threshold`` (NaN: never)
    hazard : (ny, nx) max over time of ``depth * (velocity + 0.5)`` (m2/s), where deeper than ``hmin``, with the
        same velocity as ``max_velocity``
    depth : (ny, nx) m at the end
    snapshot_times : (k,) s ; snapshots : (k, ny, nx) float32 m
    gauges : DataFrame (time_s, gauge, depth_m, wse_m, speed_m_s); ``speed_m_s`` the cell's speed as the step
        that ends at ``time_s`` counted it into ``max_velocity`` (see :meth:`FloodModel.velocity`)
    mass_balance : DataFrame, one row per quantity (m3)
    steps, elapsed_s, cell_updates_per_s
        ``cell_updates_per_s`` is taken over the steps after the first: the first step of a run holds numba's
        compile, or its cache load, on a process's first run (0.3-0.5 s from the cache here, against a few ms a
        step after), and is timed on its own as ``first_step_s``. A run of one step is timed whole.
    """

    max_depth: np.ndarray
    max_velocity: np.ndarray
    time_of_wetting: np.ndarray
    hazard: np.ndarray
    depth: np.ndarray
    snapshot_times: np.ndarray
    snapshots: np.ndarray
    gauges: pd.DataFrame
    mass_balance: pd.DataFrame
    steps: int = 0
    sim_time: float = 0.0
    elapsed_s: float = 0.0
    cell_updates_per_s: float = 0.0
    info: dict = field(default_factory=dict)
    first_step_s: float = 0.0


def _grid(name: str, value, shape, dtype, *, allow_scalar: bool = True, nonneg: bool = True) -> np.ndarray:
    a = np.asarray(value, dtype=np.float64)
    if a.ndim == 0:
        if not allow_scalar:
            raise RasterError(f"{name} must be an array of shape {shape}")
        a = np.full(shape, float(a))
    if a.shape != tuple(shape):
        raise RasterError(f"{name} has shape {a.shape} but the DEM grid is {tuple(shape)}; "
                          "resample it onto the DEM grid (same transform and size)")
    if not np.all(np.isfinite(a)):
        raise RasterError(f"{name} has NaN or inf values; fill them before running")
    if nonneg and np.any(a < 0):
        raise ParameterError(f"{name} must be >= 0, got a minimum of {a.min()}")
    return np.ascontiguousarray(a, dtype=dtype)


class FloodModel:
    """2D urban flood model: the local-inertial scheme on a raster grid.

    Parameters
    ----------
    dem : (ny, nx) array
        Bed elevation (m); row 0 is the north edge. NaN or ``nodata`` cells must
        be marked ``blocked`` (or filled), else :class:`RasterError`.
    cell_size : float or (dx, dy)
        Cell size in m.
    manning : float or (ny, nx) array
        Manning's n (s/m^(1/3)).
    transform : affine-like, optional
        Map transform (``.a .c .e .f`` or a 6-tuple ``(a, b, c, d, e, f)``), for
        inflows and gauges given as x/y.
    blocked : (ny, nx) bool array, optional
        Cells that carry no water (buildings burned in). Rain on them is not
        applied (reported as ``rain_on_blocked``) unless ``roof_runoff`` routes it.
    rain : Hyetograph, RainSeries or float (mm/h, constant), optional
    roof_runoff : RoofRunoff, optional
        Roofs (labelled blocked cells) whose rain goes, in the same step, to
        their outlet cells (downpipes onto open cells next to the building).
        Reported as ``roof_runoff`` in the mass balance; the rain that falls on
        the whole grid is then ``rain + roof_runoff + rain_on_blocked`` (the
        last: blocked cells without a roof label). None (default): the rain on
        blocked cells is dropped. Works with a :class:`Hyetograph` (the open
        cells get ``rate * rain_weight``) and a :class:`RainSeries` (each roof
        cell's own rain is routed).
    inflows : sequence of Inflow
    boundaries : BoundaryConditions, optional (all edges closed by default)
    drainage : float or (ny, nx) array, mm/h
        Sewer capacity as a loss rate (see :meth:`zone_rates` for zones).
    infiltration : float or (ny, nx) array, mm/h (constant)
    initial_depth : float or (ny, nx) array, m
    gauges : sequence of Gauge
    params : FloodParameters

    Examples
    --------
    >>> import numpy as np
    >>> from simulation.flood import FloodModel, Hyetograph
    >>> dem = np.zeros((20, 30))
    >>> m = FloodModel(dem, cell_size=5.0, manning=0.03, rain=Hyetograph.uniform(60.0, 600.0))
    >>> res = m.run(600.0)
    >>> round(float(res.depth.mean()), 4)   # 60 mm/h for 10 minutes on a closed flat box
    0.01
    >>> abs(m.mass_balance()["relative_error"]) < 1e-12
    True

    A 2 x 2 building in the middle whose roof drains onto the 8 cells along its
    walls: all the rain on the box stays in it.

    >>> from simulation.flood import RoofRunoff
    >>> blocked = np.zeros((20, 30), dtype=bool)
    >>> blocked[9:11, 14:16] = True
    >>> ring = [(8, 14), (8, 15), (11, 14), (11, 15), (9, 13), (10, 13), (9, 16), (10, 16)]
    >>> roofs = RoofRunoff(blocked.astype(int), [[1] * 8, [r * 30 + c for r, c in ring]])
    >>> m = FloodModel(dem, cell_size=5.0, blocked=blocked, roof_runoff=roofs, rain=Hyetograph.uniform(60.0, 600.0))
    >>> float(m.rain_weight[8, 14]), float(m.rain_weight[0, 0]), float(m.rain_weight[9, 14])
    (1.5, 1.0, 0.0)
    >>> mb = m.run(600.0).mass_balance.set_index("quantity")["value"]
    >>> round(float(mb["storage"]), 6), round(float(mb["roof_runoff"]), 6), float(mb["rain_on_blocked"])
    (150.0, 1.0, 0.0)
    """

    def __init__(self, dem, cell_size, *, manning=0.03, transform=None, nodata=None, blocked=None,
                 rain=None, roof_runoff: RoofRunoff | None = None, inflows: Sequence[Inflow] = (),
                 boundaries: BoundaryConditions | None = None, drainage=0.0, infiltration=0.0, initial_depth=0.0,
                 gauges: Sequence[Gauge] = (), params: FloodParameters | None = None) -> None:
        self.params = params if params is not None else FloodParameters()
        if not isinstance(self.params, FloodParameters):
            raise ParameterError("params must be a FloodParameters")
        p = self.params
        dt_ = np.float64 if p.dtype == "float64" else np.float32
        self.dtype = dt_
        z = np.asarray(dem, dtype=np.float64)
        if z.ndim != 2 or min(z.shape) < 1:
            raise RasterError(f"dem must be a 2D array (ny, nx), got shape {z.shape}")
        self.shape = ny, nx = z.shape
        sizes = list(np.ravel(cell_size)) if np.ndim(cell_size) <= 1 else []
        if len(sizes) not in (1, 2) or not all(_is_number(v) for v in sizes):
            raise ParameterError(f"cell_size must be a number of metres or a pair (dx, dy), got {cell_size!r}")
        dx, dy = float(sizes[0]), float(sizes[-1])
        if not (dx > 0 and dy > 0 and math.isfinite(dx) and math.isfinite(dy)):
            raise ParameterError(f"cell_size must be > 0 m, got {cell_size!r}")
        self.dx, self.dy = dx, dy
        self.area = dx * dy
        self.transform = self._as_transform(transform)
        if self.transform is not None:
            a, _, _, _, e, _ = self.transform
            if not (math.isclose(abs(a), dx, rel_tol=1e-9) and math.isclose(abs(e), dy, rel_tol=1e-9)):
                raise RasterError(f"the transform's cells are {abs(a)} x {abs(e)} m but cell_size is {dx} x {dy} m; "
                                  "pass the DEM's own transform and cell size")

        hole = ~np.isfinite(z)
        if nodata is not None and not (isinstance(nodata, float) and math.isnan(nodata)):
            hole |= z == nodata
        if blocked is None:
            blk = np.zeros(self.shape, dtype=bool)
        else:
            blk = np.asarray(blocked, dtype=bool)
            if blk.shape != self.shape:
                raise RasterError(f"blocked mask has shape {blk.shape} but the DEM grid is {self.shape}; "
                                  "rasterise it onto the DEM grid")
        bad = hole & ~blk
        if bad.any():
            r, c = np.argwhere(bad)[0]
            raise RasterError(f"the DEM has {int(bad.sum())} nodata/NaN cells (first at row {r}, col {c}) that are not blocked; "
                              "fill the holes (e.g. rasterio.fill.fillnodata) or pass them in blocked=")
        wild = ~hole & ~blk & (np.abs(np.where(hole, 0.0, z)) >= _MAX_ABS_ELEVATION)
        if wild.any():
            r, c = np.argwhere(wild)[0]
            raise RasterError(f"the DEM has {int(wild.sum())} cells with elevations beyond +-{_MAX_ABS_ELEVATION:g} m "
                              f"(first at row {r}, col {c}: {z[r, c]:g}); that looks like a nodata value: pass it as "
                              "nodata= and fill or block those cells")
        self.blocked = blk
        self.dem = np.where(blk, np.nan, z)
        self.act = np.ascontiguousarray((~blk).astype(np.uint8))
        if not self.act.any():
            raise ParameterError("every cell is blocked; there is nowhere for water to go")
        self.z = np.ascontiguousarray(np.where(blk, K.WALL, np.where(hole, 0.0, z)), dtype=dt_)
        n = _grid("manning", manning, self.shape, np.float64)
        if np.any(n[~blk] <= 0):
            raise ParameterError("manning n must be > 0 on every active cell (0.01-0.1 is typical)")
        # Manning n^2 is a parameter field: float32 (7 digits) in every mode, a third less to read per face
        self.n2 = np.ascontiguousarray(n * n, dtype=np.float32)
        # a copy: the run updates h in place and must not write into the caller's initial_depth array
        h0 = np.array(_grid("initial_depth", initial_depth, self.shape, np.float64))
        h0[blk] = 0.0
        h0[h0 == 0.0] = 0.0  # -0.0 as +0.0: a dry cell is +0.0 bit for bit (see skip_dry)
        self.h = np.ascontiguousarray(h0, dtype=dt_)
        self.qx = np.zeros((ny, nx + 1), dtype=dt_)
        self.qy = np.zeros((ny + 1, nx), dtype=dt_)

        # losses (m/s)
        self._drain_u, self._drain_g = self._rate_field("drainage", drainage)
        self._inf_u, self._inf_g = self._rate_field("infiltration", infiltration)

        # rain
        self._dummy = np.zeros((1, 1), dtype=dt_)
        if rain is None:
            rain = Hyetograph([0.0, 1.0], [0.0])
        elif _is_number(rain):
            if rain < 0:
                raise ParameterError(f"rain intensity must be >= 0 mm/h, got {rain}")
            rain = Hyetograph([0.0, 1e300], [float(rain)])
        if isinstance(rain, RainSeries):
            if rain.shape != self.shape:
                raise RasterError(f"RainSeries grids have shape {rain.shape} but the DEM grid is {self.shape}; "
                                  "resample the rain onto the DEM grid")
            self._rain_cache = (-2, self._dummy, None, 0.0, 0.0, 0.0)
        elif not isinstance(rain, Hyetograph):
            raise ParameterError(f"rain must be a Hyetograph, RainSeries or a constant in mm/h, got {type(rain).__name__}")
        self.rain = rain
        self._setup_roofs(roof_runoff)

        # inflows
        self.inflows = list(inflows)
        self._inflow_cells = []
        for k, inf in enumerate(self.inflows):
            if not isinstance(inf, Inflow):
                raise ParameterError(f"inflows[{k}] must be an Inflow, got {type(inf).__name__}")
            r, c = self._cell_of(inf.row, inf.col, inf.x, inf.y, f"inflow {inf.name or k!r}")
            if blk[r, c]:
                raise ParameterError(f"inflow {inf.name or k!r} falls in a blocked cell (row {r}, col {c}); move it to an open cell")
            self._inflow_cells.append((r, c))
        self._src_r = np.array([r for r, _ in self._inflow_cells], dtype=np.int64)
        self._src_c = np.array([c for _, c in self._inflow_cells], dtype=np.int64)
        self._src_dh = np.zeros(len(self._inflow_cells), dtype=dt_)

        # boundaries
        self.boundaries = boundaries if boundaries is not None else BoundaryConditions()
        self._setup_boundaries()

        # gauges
        self.gauges = list(gauges)
        self._gauge_cells = []
        for k, g in enumerate(self.gauges):
            r, c = self._cell_of(g.row, g.col, g.x, g.y, f"gauge {g.name!r}")
            if blk[r, c]:
                twin_warn(f"gauge {g.name!r} lies in a blocked cell (row {r}, col {c}); it will record no water. "
                              "Move it to an open cell next to it", TwinWarning, stacklevel=2)
            self._gauge_cells.append((r, c))

        self._event_arrays = [np.asarray(self.rain.events())] + [inf.times for inf in self.inflows] + \
            [ts for _, _, ts, _, _ in self._stage_series]
        nthreads = numba.config.NUMBA_NUM_THREADS
        if p.threads is not None:
            self._threads = min(p.threads, nthreads)
        else:
            self._threads = 1 if int(self.act.sum()) < p.parallel_min_cells else nthreads
        self._blocked_cells = float(self.blocked.sum())
        self._open_cells = float(self.act.sum())

        # state and outputs
        self.time = 0.0
        self.steps = 0
        self._stats = np.zeros((ny, 4), dtype=np.float64)
        # wet columns per row after the last step and the one before, and the next ones (see skip_dry)
        self._live = [np.empty((ny, 2), dtype=np.int64) for _ in range(3)]
        self._no_force = self._empty_ranges()
        self._swept = [0, 0]  # faces columns and cells swept, summed over the steps
        self.state_changed()
        self.max_depth = self.h.astype(np.float64).copy()
        # speed and hazard maxima are outputs, kept in float32 (7 digits): 8 bytes less per cell and step
        self.max_velocity = np.zeros(self.shape, dtype=np.float32)
        self.hazard = np.zeros(self.shape, dtype=np.float32)
        self.time_of_wetting = np.full(self.shape, np.nan)
        self.time_of_wetting[self.h > p.wet_threshold] = 0.0
        self._hmax_now = float(self.h.max())
        self._umax_now = 0.0  # the largest face velocity |q| / h_f after the last step (m/s)
        self._storage0 = float(np.sum(self.h, dtype=np.float64)) * self.area
        self._storage = self._storage0
        self._mb = dict(rain=0.0, roof_runoff=0.0, inflow=0.0, boundary_in=0.0, boundary_out=0.0, drainage=0.0,
                        infiltration=0.0, clamp=0.0, rain_on_blocked=0.0)
        self._snap_t: list[float] = []
        self._snaps: list[np.ndarray] = []
        self._gauge_rows: list[tuple] = []
        self._next_snap = 0.0 if p.snapshot_interval else math.inf
        self._next_gauge = 0.0 if (p.gauge_interval and self.gauges) else math.inf
        self._record_outputs()

    # ------------------------------------------------------------------ set-up helpers
    @staticmethod
    def _as_transform(t):
        if t is None:
            return None
        if hasattr(t, "a") and hasattr(t, "e"):
            t = (float(t.a), float(t.b), float(t.c), float(t.d), float(t.e), float(t.f))
        else:
            vals = tuple(t)
            if len(vals) < 6 or not all(_is_number(v) for v in vals[:6]):
                raise ParameterError("transform must be an affine.Affine or a 6-tuple (a, b, c, d, e, f)")
            t = tuple(float(v) for v in vals[:6])
        if not all(math.isfinite(v) for v in t) or t[0] == 0 or t[4] == 0:
            raise ParameterError(f"transform {t} is not a valid grid transform (finite, with non-zero a and e)")
        if t[1] != 0 or t[3] != 0:
            raise ParameterError(f"transform {t} is rotated (b, d != 0); the model grid must be north-up: "
                                 "warp the DEM to a north-up grid first")
        return t

    def _cell_of(self, row, col, x, y, what: str) -> tuple[int, int]:
        ny, nx = self.shape
        if row is None:
            if self.transform is None:
                raise ParameterError(f"{what} is given by x/y but the model has no transform; pass transform= or use row/col")
            if not (_is_number(x) and _is_number(y) and math.isfinite(x) and math.isfinite(y)):
                raise ParameterError(f"{what} has x={x!r}, y={y!r}; give finite map coordinates (m)")
            a, b, c, d, e, f = self.transform
            col = int(math.floor((x - c) / a))
            row = int(math.floor((y - f) / e))
            where = f"x={x}, y={y} (row {row}, col {col})"
        else:
            row, col = int(row), int(col)
            where = f"row {row}, col {col}"
        if not (0 <= row < ny and 0 <= col < nx):
            raise ParameterError(f"{what} at {where} is outside the grid of {ny} x {nx} cells; move it inside the DEM extent")
        return row, col

    def _rate_field(self, name, value):
        """mm/h scalar or grid -> (uniform m/s, grid m/s or dummy)."""
        a = np.asarray(value, dtype=np.float64)
        if a.ndim == 0:
            if not math.isfinite(float(a)) or a < 0:
                raise ParameterError(f"{name} must be >= 0 mm/h, got {float(a)}")
            return float(a) / 3.6e6, np.zeros((1, 1), dtype=self.dtype)
        g = _grid(name, a, self.shape, np.float64)
        return 0.0, np.ascontiguousarray(g / 3.6e6, dtype=self.dtype)

    def _setup_roofs(self, rr) -> None:
        """Check ``roof_runoff`` against the grid; the per-roof sums and outlet fractions for routing."""
        ny, nx = self.shape
        self._roof = None
        self._roof_extra = None  # (ny, nx): the roof cells routed to each open cell (for uniform rain)
        self._roof_cache = (-1.0, self._dummy, 0.0)  # (rate, rate * extra as dtype, its sum) for uniform rain
        self._routed_cells = 0.0
        if rr is None:
            return
        if not isinstance(rr, RoofRunoff):
            raise ParameterError(f"roof_runoff must be a RoofRunoff (roof labels and outlet cells) or None (rain on "
                                 f"blocked cells is dropped), got {type(rr).__name__}")
        lab = rr.roof
        if lab.shape != self.shape:
            raise RasterError(f"roof_runoff.roof has shape {lab.shape} but the DEM grid is {self.shape}; "
                              "label the roofs on the DEM grid")
        wrong = (lab > 0) & ~self.blocked
        if wrong.any():
            r, c = np.argwhere(wrong)[0]
            raise ParameterError(f"roof_runoff labels {int(wrong.sum())} open cells as roof (first at row {r}, col {c}); "
                                 "rain falls on open cells anyway: label only blocked cells")
        roof_of, cell = rr.outlets
        n = ny * nx
        if cell.size and (cell.min() < 0 or cell.max() >= n):
            bad = cell[(cell < 0) | (cell >= n)][0]
            raise ParameterError(f"roof_runoff outlet cell {bad} is off the grid; outlets are flat indices "
                                 f"row * nx + col in 0..{n - 1}")
        shut = self.blocked.ravel()[cell]
        if shut.any():
            r, c = divmod(int(cell[shut][0]), nx)
            raise ParameterError(f"roof_runoff has {int(shut.sum())} outlets on blocked cells (first at row {r}, col {c}); "
                                 "an outlet must be an open cell (next to the roof)")
        k = int(max(lab.max(initial=0), roof_of.max(initial=0)))
        count = np.bincount(lab.ravel(), minlength=k + 1).astype(np.float64)
        count[0] = 0.0
        wsum = np.bincount(roof_of, weights=rr.share, minlength=k + 1)
        orphan = np.flatnonzero((count > 0) & ~(wsum > 0))
        if orphan.size:
            raise ParameterError(f"roof {orphan[0]} of roof_runoff has {int(count[orphan[0]])} cells but no outlet with a "
                                 f"share > 0 ({orphan.size} such roofs); its rain would vanish: give it an outlet, "
                                 "or label its cells 0 to drop their rain")
        frac = rr.share / np.where(wsum > 0, wsum, 1.0)[roof_of]
        self._roof = (lab.ravel(), roof_of, cell, frac, k)
        self._roof_extra = np.bincount(cell, weights=count[roof_of] * frac, minlength=n).reshape(self.shape)
        self._routed_cells = float(count.sum())

    def _route_roof_rain(self, g: np.ndarray) -> np.ndarray:
        """The rain rate (m/s, float64) each open cell gets from the roofs under the rain grid ``g``."""
        lab, roof_of, cell, frac, k = self._roof
        per_roof = np.bincount(lab, weights=g.ravel(), minlength=k + 1)  # rate x cells per roof
        per_roof[0] = 0.0
        return np.bincount(cell, weights=per_roof[roof_of] * frac, minlength=g.size).reshape(self.shape)

    @property
    def rain_weight(self) -> np.ndarray:
        """The share of a uniform rain each cell gets, (ny, nx): 1 on open cells plus the roof cells routed to
        it (``roof_runoff``), 0 on blocked cells."""
        extra = 0.0 if self._roof_extra is None else self._roof_extra
        return np.where(self.blocked, 0.0, 1.0 + extra)

    @staticmethod
    def zone_rates(zones, rates: dict, default: float = 0.0) -> np.ndarray:
        """A per-cell rate grid (mm/h) from a zone-id grid and ``{zone: rate}``.

        >>> FloodModel.zone_rates(np.array([[1, 2], [2, 0]]), {1: 30.0, 2: 10.0})
        array([[30., 10.],
               [10.,  0.]])
        """
        z = np.asarray(zones)
        out = np.full(z.shape, float(default))
        for k, v in rates.items():
            if not (isinstance(v, (int, float)) and v >= 0):
                raise ParameterError(f"rate of zone {k!r} must be >= 0 mm/h, got {v!r}")
            out[z == k] = float(v)
        return out

    def _setup_boundaries(self) -> None:
        ny, nx = self.shape
        lengths = {"north": nx, "south": nx, "west": ny, "east": ny}
        code_of = {"closed": K.CLOSED, "free": K.FREE, "stage": K.STAGE, "flux": K.FLUX}
        bc = self.boundaries
        if not isinstance(bc, BoundaryConditions):
            raise ParameterError("boundaries must be a BoundaryConditions")
        self._bc = {}
        self._stage = {}
        self._stage_series = []  # (edge, index array, times, levels)
        edge_blocked = {"north": self.blocked[0], "south": self.blocked[-1], "west": self.blocked[:, 0],
                        "east": self.blocked[:, -1]}
        for e in EDGES:
            codes = np.full(lengths[e], code_of[bc.default], dtype=np.int8)
            for spec in bc.specs[e]:
                try:
                    idx = np.arange(lengths[e])[spec.cells]
                except (IndexError, TypeError, ValueError) as exc:
                    raise ParameterError(f"the {spec.kind!r} boundary on the {e} edge has cells={spec.cells!r}, which do "
                                         f"not index the {lengths[e]} cells of that edge ({exc}); give a slice, "
                                         f"indices 0..{lengths[e] - 1} or a bool mask of that length") from None
                codes[idx] = code_of[spec.kind]
                if spec.kind in ("stage", "flux"):
                    self._stage_series.append((e, idx, spec.times, spec.levels, spec.kind))
            codes[edge_blocked[e]] = K.CLOSED  # blocked cells carry no water, whatever their edge says
            self._bc[e] = codes
            self._stage[e] = np.full(lengths[e], np.nan, dtype=self.dtype)
        self._update_stage(0.0)

    def _update_stage(self, t: float, stage: dict | None = None) -> None:
        """The boundary stages (and imposed inflows) at ``t`` into ``stage`` (default: the step's own)."""
        stage = self._stage if stage is None else stage
        for e, idx, ts, lv, _ in self._stage_series:
            stage[e][idx] = np.interp(t, ts, lv)

    def _empty_ranges(self) -> np.ndarray:
        ny, nx = self.shape
        r = np.empty((ny, 2), dtype=np.int64)
        r[:, 0] = nx
        r[:, 1] = 0
        return r

    def _row_spans(self, mask: np.ndarray) -> np.ndarray:
        """Per row, the columns ``[lo, hi)`` from the first to the last True cell ((nx, 0) where none)."""
        r = self._empty_ranges()
        anyr = mask.any(axis=1)
        r[anyr, 0] = np.argmax(mask[anyr], axis=1)
        r[anyr, 1] = self.shape[1] - np.argmax(mask[anyr, ::-1], axis=1)
        return r

    def state_changed(self) -> None:
        """Rescan the wet region (for ``skip_dry``) after ``h``, ``qx`` or ``qy`` were written by hand.

        A cell counts as wet where its depth or a discharge on one of its faces is not +0.0 bit for bit.
        """
        bits = np.uint64 if self.dtype == np.float64 else np.uint32
        wet = self.h.view(bits) != 0
        fx = self.qx.view(bits) != 0
        fy = self.qy.view(bits) != 0
        wet |= fx[:, :-1] | fx[:, 1:] | fy[:-1] | fy[1:]
        self._live[0][:] = self._row_spans(wet)
        self._live[1][:] = self._empty_ranges()
        self._storage = None  # summed again when asked for

    # ------------------------------------------------------------------ time stepping
    def _courant(self) -> float:
        # von Neumann analysis of the theta scheme on a 2D staggered grid: the
        # checkerboard mode is stable for Courant <= sqrt(theta / 2); alpha * sqrt(theta)
        # keeps Bates et al.'s alpha = 0.7 for theta = 1 and stays inside that bound.
        return self.params.alpha * math.sqrt(self.params.theta)

    def _cfl_dt(self, velocity: bool = True) -> float:
        """The CFL step ``alpha * sqrt(theta) * min(dx, dy) / (u_max + sqrt(g * h_max))`` (inf when dry);
        ``velocity=False``: the gravity-wave step of Bates et al. (2010), without ``u_max``."""
        hm = max(self._hmax_now, self._stage_depth_max())
        c = math.sqrt(self.params.g * hm) if hm > 0 else 0.0
        if velocity:
            c += self._umax_now
        return self._courant() * min(self.dx, self.dy) / c if c > 0 else math.inf

    def _theta_step(self, dt: float) -> float:
        """The theta weight of a step of ``dt``: ``1 - (1 - theta) * min(1, dt / dt_cfl)``.

        The de Almeida et al. (2012) weighting ``q' = theta q + (1 - theta)/2 (q_l + q_r) ...`` smooths the
        discharges by a fixed share *per step*: a diffusion ``(1 - theta) dx^2 / (2 dt)`` that grows without
        bound as the step shrinks, so a run with a smaller ``max_dt`` (or a step cut short by an event) was
        smoothed more, not solved more accurately: on the sample city the outflow fell from 36,300 to 26,700 m3
        as ``max_dt`` went from 2 to 0.25 s. de Almeida et al. chose theta for steps at the CFL limit, here
        ``dt_cfl = alpha sqrt(theta) dx / (u_max + sqrt(g h_max))`` (see :meth:`stable_dt`); scaling
        ``1 - theta`` by ``dt / dt_cfl`` keeps exactly their scheme at that step and, below it, the diffusion of
        a CFL step (``(1 - theta) dx^2 / (2 dt_cfl)``, independent of ``dt``), so the result converges as ``dt``
        shrinks. (Against the gravity-wave step alone, without ``u_max``, the fast flow of steep channels lost
        the smoothing it needs: the 10 % tilted sample city ran away again to 400 m/s.)
        """
        th = self.params.theta
        if th >= 1.0:
            return 1.0
        # the reference step is the CFL step at Bates et al.'s alpha = 0.7 whatever ``params.alpha``: with the
        # run's own alpha, a smaller alpha shrank the reference step and so smoothed more per second, and the
        # results moved away as the step shrank (the sample city's outflow fell 10,136 -> 9,225 -> 8,440 m3 at
        # alpha 0.7 -> 0.35 -> 0.175, until 2026-12-05); at the default alpha = 0.7 nothing changes
        c = self._cfl_dt() * (_THETA_REF_ALPHA / self.params.alpha)
        return 1.0 - (1.0 - th) * min(1.0, dt / c) if c < math.inf else 1.0

    def stable_dt(self) -> float:
        """The largest stable step now: ``alpha * sqrt(theta) * min(dx, dy) / (u_max + sqrt(g * h_max))``,
        capped at ``max_dt``.

        ``u_max`` is the largest face velocity ``|q| / h_f`` of the last step, boundary faces included (their
        ``h_f`` the edge cell's depth; an inflow of 0.5 m2/s into 0.1 m of water enters at 5 m/s): the Courant
        condition of the shallow water equations, ``dt <= C dx / (|u| + sqrt(g h))``, which the gravity-wave form of Bates et
        al. (2010), ``sqrt(g h)`` alone, leaves out; it matters where the flow is fast and supercritical
        (steep streets and channels), where de Almeida & Bates (2013) find the local inertial scheme fragile.
        """
        return min(self.params.max_dt, self._cfl_dt())

    def _stage_depth_max(self) -> float:
        if not self._stage_series:
            return 0.0
        m = 0.0
        zs = {"north": self.z[0], "south": self.z[-1], "west": self.z[:, 0], "east": self.z[:, -1]}
        for e, idx, _, _, kind in self._stage_series:
            if kind != "stage":
                continue
            d = self._stage[e][idx] - zs[e][idx]
            if d.size:
                m = max(m, float(np.max(d)))
        return m

    def _events(self) -> list[float]:
        ev = [self._next_snap, self._next_gauge]
        for arr in self._event_arrays:
            k = int(np.searchsorted(arr, self.time, side="right"))
            if k < arr.size:
                ev.append(float(arr[k]))
        return ev

    def step(self, dt: float | None = None) -> float:
        """Advance one step of ``dt`` seconds (default: the adaptive stable step); returns the step taken."""
        p = self.params
        stable = self.stable_dt()
        if dt is None:
            dt = stable
            if dt < p.min_dt:
                j, i = np.unravel_index(int(np.argmax(self.h)), self.shape)
                raise StabilityError(
                    f"the stable time step {dt:.3g} s is below min_dt={p.min_dt} s (depth {self._hmax_now:.3g} m at row {j}, "
                    f"col {i}); check the DEM for pits/spikes, coarsen the grid or lower min_dt")
        else:
            if not _is_number(dt):
                raise ParameterError(f"dt must be a positive number of seconds, got {dt!r}")
            dt = float(dt)
            if not dt > 0 or not math.isfinite(dt):
                raise ParameterError(f"dt must be a positive number of seconds, got {dt}")
            hm = max(self._hmax_now, self._stage_depth_max())
            cfl = self._courant() * min(self.dx, self.dy) / math.sqrt(p.g * hm) if hm > 0 else math.inf
            if dt > cfl * (1 + 1e-12):
                stable = cfl
                raise StabilityError(
                    f"dt={dt:.4g} s cannot be stable: the CFL limit alpha*sqrt(theta)*dx/sqrt(g*h_max) is {stable:.4g} s "
                    f"(h_max={self._hmax_now:.3g} m, alpha={p.alpha}); take a smaller step or call step() without dt")
        self._advance(dt)
        return dt

    def _advance(self, dt: float) -> None:
        prev = numba.get_num_threads()
        if prev != self._threads:
            numba.set_num_threads(self._threads)
        try:
            self._advance_kernels(dt)
        finally:
            if prev != self._threads:
                numba.set_num_threads(prev)

    def _rain_grid(self, k: int) -> tuple:
        """Block ``k`` of a RainSeries as the kernel's rain grid (m/s, roof rain moved to the outlets), the rows to
        update, and the rates (m/s x cells) on open cells, on blocked cells left dropped, and from the roofs."""
        if k < 0:
            return self._dummy, self._no_force, 0.0, 0.0, 0.0
        g = self.rain.grids[k] / 3.6e6
        if self._roof is None:
            g = np.ascontiguousarray(g, dtype=self.dtype)
            return (g, self._row_spans(g > 0), float(g[~self.blocked].sum(dtype=np.float64)),
                    float(g[self.blocked].sum(dtype=np.float64)), 0.0)
        blk = self.blocked
        own = float(np.ascontiguousarray(g, dtype=self.dtype)[~blk].sum(dtype=np.float64))
        dropped = float(g[blk & (self._roof[0].reshape(self.shape) == 0)].sum())
        # the outlets' rows must be updated even where no rain falls on them (see _sweep_ranges)
        eff = np.ascontiguousarray(np.where(blk, 0.0, g) + self._route_roof_rain(g), dtype=self.dtype)
        applied = float(eff.sum(dtype=np.float64))
        return eff, self._row_spans(eff > 0), own, dropped, applied - own

    def _advance_kernels(self, dt: float) -> None:
        p = self.params
        t0 = self.time
        self._update_stage(t0)
        inflow = 0.0
        for k, inf in enumerate(self.inflows):
            q = 0.5 * (inf.rate_at(t0) + inf.rate_at(t0 + dt))  # exact for a piecewise-linear hydrograph
            if q < 0:
                raise ParameterError(f"inflow {inf.name!r} is negative ({q} m3/s at t={t0} s); "
                                     "an inflow hydrograph must be >= 0 (use drainage for losses)")
            dh = self.dtype(q * dt / self.area)
            self._src_dh[k] = dh
            inflow += float(dh) * self.area
        if isinstance(self.rain, RainSeries):
            k = self.rain.index_at(t0)
            if k != self._rain_cache[0]:
                self._rain_cache = (k, *self._rain_grid(k))
            rain_u, rain_g, force, rain_open, rain_blk, rain_roof = 0.0, *self._rain_cache[1:]
        else:
            rain_u, rain_g, force, rain_roof = self.rain.rate_at(t0), self._dummy, self._no_force, 0.0
            rain_open, rain_blk = rain_u * self._open_cells, rain_u * self._blocked_cells
            if self._roof is not None and rain_u > 0:  # the roofs' rain on their outlets, as a rain grid
                if self._roof_cache[0] != rain_u:
                    g = np.ascontiguousarray(self._roof_extra * rain_u, dtype=self.dtype)
                    self._roof_cache = (rain_u, g, float(g.sum(dtype=np.float64)))
                _, rain_g, rain_roof = self._roof_cache
                rain_blk = rain_u * (self._blocked_cells - self._routed_cells)
        # the depths the step starts from, where the gauges record after it: their speeds take the faces' flow
        # depths from these, as the step's speeds do (see _record_outputs)
        h_start = self.h.copy() if self.gauges and t0 + dt + _EVENT_EPS >= self._next_gauge else None
        # one sweep: momentum, the inflows (added after the momentum update), continuity, maxima; in place
        live = self._live
        nf, nc, umax = K.fused_step(
            self.z, self.h, self.n2, self.act, self.qx, self.qy,
            self._bc["west"], self._bc["east"], self._bc["north"], self._bc["south"],
            self._stage["west"], self._stage["east"], self._stage["north"], self._stage["south"],
            self._src_r, self._src_c, self._src_dh, rain_g, rain_u, self._drain_g, self._drain_u,
            self._inf_g, self._inf_u, dt, self.dx, self.dy, p.g, self._theta_step(dt), p.hmin, t0 + dt, p.wet_threshold,
            p.track_maxima, self.max_depth, self.max_velocity, self.time_of_wetting, self.hazard, self._stats,
            self._threads, live[0], live[1], live[2], force, not p.skip_dry)
        self._live = [live[2], live[0], live[1]]
        self._swept[0] += nf
        self._swept[1] += nc
        s = self._stats.sum(axis=0)
        clamp = 0.0
        storage = None  # summed from the depths when asked for (mass_balance)
        if s[2] > 0:  # negative (or NaN) depths: repair, and sum the storage, which shows a NaN
            _, clamp = K.repair_negative(self.h, self.qx, self.qy, dt, 1.0 / self.dx, 1.0 / self.dy, p.repair_sweeps,
                                         self._stats[:, 2].copy())
            storage = float(np.sum(self.h, dtype=np.float64)) * self.area
        vin, vout = K.boundary_volume(self.qx, self.qy, dt, self.dx, self.dy)
        hmax = float(self._stats[:, 3].max())  # the max of each row's bit patterns: +inf or NaN show here
        if (storage is not None and not math.isfinite(storage)) or not math.isfinite(hmax):
            raise StabilityError(f"the solution blew up (NaN/inf) at t={t0 + dt:.1f} s; lower alpha or max_dt, "
                                 "or check the inputs (DEM spikes, huge inflows)")
        mb = self._mb
        mb["rain"] += rain_open * dt * self.area
        mb["roof_runoff"] += rain_roof * dt * self.area
        mb["rain_on_blocked"] += rain_blk * dt * self.area
        mb["drainage"] += s[0] * self.area
        mb["infiltration"] += s[1] * self.area
        mb["inflow"] += inflow
        mb["boundary_in"] += vin
        mb["boundary_out"] += vout
        mb["clamp"] += clamp * self.area
        self._storage = storage
        self._hmax_now = hmax
        self._umax_now = umax if math.isfinite(umax) else 0.0
        self.time = t0 + dt
        self.steps += 1
        self._record_outputs(h_start)

    def _cell_velocity(self, hf_h: np.ndarray, rows, cols, stage: dict) -> tuple[np.ndarray, np.ndarray]:
        """u, v (m/s) of the cells ``(rows, cols)`` from the discharges ``qx``, ``qy`` and the faces' flow depths
        of the depths ``hf_h`` (see :func:`_kernels.cell_velocity`)."""
        rows = np.ascontiguousarray(rows, dtype=np.int64)
        cols = np.ascontiguousarray(cols, dtype=np.int64)
        u = np.empty(rows.shape[0], dtype=np.float64)
        v = np.empty(rows.shape[0], dtype=np.float64)
        K.cell_velocity(self.z, hf_h, self.h, self.qx, self.qy, self._bc["west"], self._bc["east"],
                        self._bc["north"], self._bc["south"], stage["west"], stage["east"], stage["north"],
                        stage["south"], self.params.hmin, rows, cols, u, v)
        return u, v

    def _record_outputs(self, h_start: np.ndarray | None = None) -> None:
        """Snapshots and gauge rows due at the model time; ``h_start`` the depths the step just taken started
        from (None before the first step)."""
        p = self.params
        eps = _EVENT_EPS
        if self.time + eps >= self._next_snap:
            self._snap_t.append(self.time)
            self._snaps.append(self.h.astype(np.float32))
            self._next_snap += p.snapshot_interval
        if self.time + eps >= self._next_gauge:
            # the speed the step counted into max_velocity at the cell: its faces' new discharges over their flow
            # depths at the step's start, with the stages the step used (the state's own before the first step)
            rc = np.array(self._gauge_cells, dtype=np.int64).reshape(-1, 2)
            u, v = self._cell_velocity(self.h if h_start is None else h_start, rc[:, 0], rc[:, 1], self._stage)
            for k, (g, (r, c)) in enumerate(zip(self.gauges, self._gauge_cells)):
                h = float(self.h[r, c])
                self._gauge_rows.append((self.time, g.name, h, float(self.dem[r, c]) + h,
                                         math.hypot(float(u[k]), float(v[k]))))
            self._next_gauge += p.gauge_interval

    def run(self, until: float, progress: ProgressCallback | None = None) -> FloodResult:
        """Run to ``until`` seconds from the start; returns a :class:`FloodResult`.

        ``progress(done_s, total_s)`` is called about every 1 % of the run, and at least every
        :data:`PROGRESS_WALL_S` seconds of wall time, so a caller that stops the run by raising from it (a
        cancelled job) waits no longer than that, however long the run.
        """
        if not (_is_number(until) and math.isfinite(until)):
            raise ParameterError(f"until must be a number of seconds, got {until!r}")
        if until < self.time:
            raise ParameterError(f"until={until} s is before the model time {self.time} s")
        until = float(until)
        self.state_changed()
        s_start, wall0 = self.steps, _time.perf_counter()
        first_s = None
        total = float(until)
        report_every = max((until - self.time) / 100.0, 1e-9)
        next_report = self.time
        wall_next = wall0 + PROGRESS_WALL_S
        while self.time < until - 1e-9:
            dt = self.stable_dt()
            if dt < self.params.min_dt:
                self.step()  # raises StabilityError with the details
            nxt = min([until] + [e for e in self._events() if e > self.time + 1e-9])
            if self.time + dt > nxt:
                dt = nxt - self.time
            elif self.time + 1.5 * dt > nxt:  # avoid a sliver step before an event
                dt = 0.5 * (nxt - self.time)
            self._advance(dt)
            if first_s is None:
                first_s = _time.perf_counter() - wall0
            if progress is not None and (self.time >= next_report or _time.perf_counter() >= wall_next):
                progress(self.time, total)
                next_report = self.time + report_every
                wall_next = _time.perf_counter() + PROGRESS_WALL_S
        if progress is not None:
            progress(self.time, total)
        if self.params.snapshot_interval and (not self._snap_t or self._snap_t[-1] < self.time - 1e-9):
            self._snap_t.append(self.time)  # the end state is always a snapshot
            self._snaps.append(self.h.astype(np.float32))
        wall = _time.perf_counter() - wall0
        steps = self.steps - s_start
        return self.result(elapsed_s=wall, steps=steps, first_step_s=first_s or 0.0)

    # ------------------------------------------------------------------ outputs
    def mass_balance(self) -> dict:
        """Volumes (m3) since the start and the balance error.

        ``error = storage - initial_storage - (rain + roof_runoff + inflow +
        boundary_in - boundary_out - drainage - infiltration + clamp)``;
        ``relative_error`` is it over the largest of the storage and total input
        volumes. ``rain`` fell on open cells, ``roof_runoff`` on roofs and was
        routed to their outlets, ``rain_on_blocked`` on blocked cells and was
        dropped (outside the balance).
        """
        mb = dict(self._mb)
        if self._storage is None:
            self._storage = float(np.sum(self.h, dtype=np.float64)) * self.area
        storage = self._storage
        err = storage - self._storage0 - (mb["rain"] + mb["roof_runoff"] + mb["inflow"] + mb["boundary_in"]
                                          - mb["boundary_out"] - mb["drainage"] - mb["infiltration"] + mb["clamp"])
        scale = max(abs(storage), self._storage0, mb["rain"] + mb["roof_runoff"] + mb["inflow"] + mb["boundary_in"],
                    1e-300)
        mb.update(initial_storage=self._storage0, storage=storage, error=err, relative_error=err / scale)
        return {k: float(v) for k, v in mb.items()}

    def mass_balance_table(self) -> pd.DataFrame:
        mb = self.mass_balance()
        return pd.DataFrame({"quantity": list(mb), "value": [float(v) for v in mb.values()],
                             "unit": ["1" if k == "relative_error" else "m3" for k in mb]})

    def swept_fraction(self) -> dict:
        """The fraction of the grid swept per step so far, faces (columns) and cells (see ``skip_dry``)."""
        n = max(self.steps, 1) * self.shape[0] * self.shape[1]
        return {"faces": self._swept[0] / n, "cells": self._swept[1] / n}

    def velocity(self) -> tuple[np.ndarray, np.ndarray]:
        """Cell-centred velocity components (u east, v south) in m/s of the current state; 0 where dry.

        Made of the faces' velocities ``q / h_f`` as ``max_velocity`` is (``h_f`` the face's flow depth as the
        momentum update computes it, faces where ``h_f <= 10 hmin`` count 0): ``u`` the mean of the cell's two x
        faces', ``v`` of its two y faces'; 0 where the cell is no deeper than ``hmin``. Here ``h_f`` comes from
        the current depths (and the boundary stages at the model time), so it is a function of the state, also
        after ``h``, ``qx`` or ``qy`` were set by hand. The step (``max_velocity``, ``hazard`` and the gauges'
        ``speed_m_s``) takes ``h_f`` from the depths it started from: the two differ by one step's change of the
        flow depth where the water rises or falls fast, and agree where the flow is steady (a river overtopping a
        bank, tests/simulation/flood/test_flood_gauge_velocity.py: this one's largest over the run exceeded
        ``max_velocity`` by 0.6 % at the brink; at the step a cell below it wets, 0.45 m/s against the step's 0).
        """
        stage = {e: a.copy() for e, a in self._stage.items()}
        self._update_stage(self.time, stage)
        rows, cols = np.indices(self.shape).reshape(2, -1)
        u, v = self._cell_velocity(self.h, rows, cols, stage)
        return u.reshape(self.shape), v.reshape(self.shape)

    def result(self, elapsed_s: float = 0.0, steps: int | None = None, first_step_s: float = 0.0) -> FloodResult:
        steps = self.steps if steps is None else steps
        # the rate over the steps after the first (see FloodResult), or over the whole when there is no other
        rest_steps, rest_s = (steps - 1, elapsed_s - first_step_s) if steps > 1 and elapsed_s > first_step_s > 0 \
            else (steps, elapsed_s)
        g = pd.DataFrame(self._gauge_rows, columns=["time_s", "gauge", "depth_m", "wse_m", "speed_m_s"])
        snaps = np.stack(self._snaps) if self._snaps else np.zeros((0,) + self.shape, dtype=np.float32)
        ncell = int(self.act.sum())
        blk = self.blocked
        mx = np.where(blk, np.nan, self.max_depth)
        return FloodResult(
            max_depth=mx, max_velocity=np.where(blk, np.nan, self.max_velocity),
            time_of_wetting=np.where(blk, np.nan, self.time_of_wetting), hazard=np.where(blk, np.nan, self.hazard),
            depth=np.where(blk, np.nan, self.h.astype(np.float64)), snapshot_times=np.asarray(self._snap_t),
            snapshots=snaps, gauges=g, mass_balance=self.mass_balance_table(), steps=steps, sim_time=self.time,
            elapsed_s=elapsed_s, first_step_s=first_step_s,
            cell_updates_per_s=(ncell * rest_steps / rest_s) if rest_s > 0 else float("nan"),
            info={"dtype": self.params.dtype, "cells": self.shape[0] * self.shape[1], "active_cells": ncell,
                  "dx": self.dx, "dy": self.dy, "params": self.params.to_dict(),
                  "swept_fraction": self.swept_fraction()},
        )


FloodResult.__repr__ = compact_repr  # arrays and tables by shape (the dataclass repr printed ~6 kB of numbers)

"""Forcing of the flood engine: rain, design storms, inflows, boundaries.

Rain intensities are given in mm/h, discharges in m3/s, levels in m, times in
seconds from the start of the run.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field

import numpy as np

from twin_core.errors import ParameterError

__all__ = [
    "Hyetograph", "RainSeries", "RoofRunoff", "StormFormula", "CHENGDU_STORM", "Inflow", "BoundaryConditions",
    "EDGES", "BOUNDARY_KINDS",
]

EDGES = ("north", "south", "west", "east")
#: the most blocks a design hyetograph may have: a week in 1 s blocks fits (604,800); a duration of 1e308 s
#: failed in numpy with "Maximum allowed size exceeded"
MAX_HYETOGRAPH_BLOCKS = 1_000_000
BOUNDARY_KINDS = ("closed", "free", "stage", "flux")


def _series(times, values, what: str, unit: str) -> tuple[np.ndarray, np.ndarray]:
    t = np.asarray(times, dtype=np.float64).ravel()
    v = np.asarray(values, dtype=np.float64).ravel()
    if t.size == 0 or t.size != v.size:
        raise ParameterError(f"{what}: times and values must be non-empty and of equal length, got {t.size} and {v.size}")
    if not (np.all(np.isfinite(t)) and np.all(np.isfinite(v))):
        raise ParameterError(f"{what}: times and values must be finite numbers")
    if np.any(np.diff(t) <= 0):
        raise ParameterError(f"{what}: times must increase strictly (seconds from the start)")
    return t, v


def _is_real(v) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, (bool, np.bool_)) and math.isfinite(v)


def _interp(t: np.ndarray, v: np.ndarray, at: float) -> float:
    """Linear interpolation, holding the end values outside the range."""
    return float(np.interp(at, t, v))


class Hyetograph:
    """Spatially uniform rain as blocks of constant intensity.

    Parameters
    ----------
    edges : array (k + 1,)
        Block edges in s, increasing; no rain before the first or after the last.
    intensity : array (k,)
        Intensity of each block in mm/h (>= 0).

    Examples
    --------
    >>> h = Hyetograph.uniform(36.0, 3600.0)
    >>> h.rate_at(10.0) * 1000 * 3600   # m/s back to mm/h
    36.0
    >>> round(h.total_mm(), 6)
    36.0
    """

    def __init__(self, edges, intensity) -> None:
        e = np.asarray(edges, dtype=np.float64).ravel()
        r = np.asarray(intensity, dtype=np.float64).ravel()
        if e.size != r.size + 1 or r.size == 0:
            raise ParameterError(f"a hyetograph needs k+1 block edges for k intensities, got {e.size} edges and {r.size} values")
        if not (np.all(np.isfinite(e)) and np.all(np.isfinite(r))):
            raise ParameterError("hyetograph edges and intensities must be finite")
        if np.any(np.diff(e) <= 0):
            raise ParameterError("hyetograph edges must increase strictly (seconds)")
        if np.any(r < 0):
            raise ParameterError(f"rain intensity must be >= 0 mm/h, got a minimum of {r.min()}; "
                                 "model losses with drainage= or infiltration= instead")
        self.edges = e
        self.intensity = r  # mm/h

    @classmethod
    def uniform(cls, intensity_mm_h: float, duration_s: float, start_s: float = 0.0) -> "Hyetograph":
        """Constant rain of ``intensity_mm_h`` for ``duration_s`` seconds."""
        if not duration_s > 0:
            raise ParameterError(f"duration must be > 0 s, got {duration_s}")
        return cls([start_s, start_s + duration_s], [intensity_mm_h])

    def rate_at(self, t: float) -> float:
        """Intensity in m/s at time ``t`` (blocks are closed on the left)."""
        k = int(np.searchsorted(self.edges, t, side="right")) - 1
        if k < 0 or k >= self.intensity.size:
            return 0.0
        return float(self.intensity[k]) / 3.6e6

    def events(self) -> np.ndarray:
        """Times at which the intensity changes."""
        return self.edges

    def total_mm(self) -> float:
        """Total rain depth in mm."""
        return float(np.sum(self.intensity * np.diff(self.edges)) / 3600.0)

    def __repr__(self) -> str:
        return f"Hyetograph({self.intensity.size} blocks, {self.total_mm():.1f} mm over {self.edges[-1] - self.edges[0]:.0f} s)"


class RainSeries:
    """Rain as a time series of rasters (e.g. radar nowcasts), blocks of constant intensity.

    Parameters
    ----------
    edges : array (k + 1,)
        Block edges in s.
    grids : array (k, ny, nx)
        Intensity in mm/h of each block and cell (>= 0, finite).
    """

    def __init__(self, edges, grids) -> None:
        e = np.asarray(edges, dtype=np.float64).ravel()
        g = np.asarray(grids, dtype=np.float64)
        if g.ndim != 3 or e.size != g.shape[0] + 1:
            raise ParameterError(f"RainSeries needs grids of shape (k, ny, nx) and k+1 edges, got {g.shape} and {e.size} edges")
        if not np.all(np.isfinite(e)):
            raise ParameterError("RainSeries edges must be finite numbers (seconds from the start)")
        if np.any(np.diff(e) <= 0):
            raise ParameterError("RainSeries edges must increase strictly (seconds)")
        if not np.all(np.isfinite(g)):
            raise ParameterError("RainSeries grids contain NaN or inf; fill them with 0 where there is no rain")
        if np.any(g < 0):
            raise ParameterError(f"rain intensity must be >= 0 mm/h, got a minimum of {g.min()}")
        self.edges = e
        self.grids = g

    @property
    def shape(self) -> tuple[int, int]:
        return self.grids.shape[1:]

    def index_at(self, t: float) -> int:
        """Block index at ``t`` or -1 when no block covers it."""
        k = int(np.searchsorted(self.edges, t, side="right")) - 1
        return k if 0 <= k < self.grids.shape[0] else -1

    def events(self) -> np.ndarray:
        return self.edges


class RoofRunoff:
    """Where the rain on blocked cells goes: roofs that drain through downpipes onto open cells.

    Each roof is a set of blocked cells sharing a label; its rain (whatever falls on its cells, uniform or
    from a :class:`RainSeries`) is put, in the same step, on its outlet cells, split in proportion to
    ``share``. The model checks the arrays against its grid (:class:`~simulation.flood.FloodModel`,
    ``roof_runoff=``).

    Parameters
    ----------
    roof : (ny, nx) int array
        The roof label of each cell: ``k >= 1`` on the blocked cells of roof ``k``; 0 elsewhere (open cells,
        and blocked cells whose rain is dropped, e.g. nodata).
    outlets : (2, n) int array
        Pairs (roof label, cell), ``cell = row * nx + col`` an open cell that gets part of that roof's rain
        (index pairs, as ``shapely.STRtree.query`` returns them). A cell may serve several roofs.
    share : (n,) float array, optional
        Weights of the pairs: roof ``k``'s rain is split over its outlets in proportion to them (>= 0, with
        a positive sum for every roof that has cells). Default: equal parts.

    Examples
    --------
    A 1 x 2 roof (label 1) at row 1 of a 3 x 4 grid, draining onto the cells west and east of it:

    >>> import numpy as np
    >>> roof = np.zeros((3, 4), dtype=int)
    >>> roof[1, 1:3] = 1
    >>> rr = RoofRunoff(roof, [[1, 1], [4, 7]])   # cells (1, 0) and (1, 3)
    >>> rr.n_roofs, rr.outlets.shape
    (1, (2, 2))
    """

    def __init__(self, roof, outlets, share=None) -> None:
        lab = np.asarray(roof)
        if lab.ndim != 2 or lab.dtype.kind not in "iub":
            raise ParameterError(f"roof must be a 2D integer label array (ny, nx), got dtype {lab.dtype} and shape "
                                 f"{lab.shape}; label the blocked cells of each roof 1, 2, ... (scipy.ndimage.label)")
        lab = lab.astype(np.int64)
        if lab.size and lab.min() < 0:
            raise ParameterError(f"roof labels must be >= 0 (0: no roof), got a minimum of {lab.min()}")
        out = np.asarray(outlets)
        if out.size == 0:
            out = np.zeros((2, 0), dtype=np.int64)
        if out.ndim != 2 or out.shape[0] != 2 or out.dtype.kind not in "iu":
            raise ParameterError(f"outlets must be an integer array of shape (2, n): roof labels and flat cell "
                                 f"indices (row * nx + col), got dtype {out.dtype} and shape {out.shape}")
        out = out.astype(np.int64)
        if out.shape[1] and out[0].min() < 1:
            raise ParameterError(f"outlets[0] holds roof labels, which are >= 1; got {out[0].min()}")
        if share is None:
            w = np.ones(out.shape[1])
        else:
            w = np.asarray(share, dtype=np.float64).ravel()
            if w.shape != (out.shape[1],):
                raise ParameterError(f"share must have one weight per outlet pair ({out.shape[1]}), got shape {w.shape}")
            if not np.all(np.isfinite(w)) or np.any(w < 0):
                raise ParameterError("share must be finite and >= 0 (weights of the outlets of each roof)")
        self.roof = np.ascontiguousarray(lab)
        self.outlets = np.ascontiguousarray(out)
        self.share = w

    @property
    def n_roofs(self) -> int:
        """The number of roof labels that have cells."""
        return int(np.unique(self.roof[self.roof > 0]).size)

    def __repr__(self) -> str:
        return f"RoofRunoff({self.n_roofs} roofs, {int((self.roof > 0).sum())} cells, {self.outlets.shape[1]} outlets)"


@dataclass(frozen=True)
class StormFormula:
    """A Chinese storm-intensity formula (暴雨强度公式) and its Chicago hyetograph.

    ``q = 167 A1 (1 + C lg P) / (t + b)^n`` in L/(s*ha), i.e. an average
    intensity ``i = A1 (1 + C lg P) / (t + b)^n`` in mm/min over a duration
    ``t`` (min) for return period ``P`` (years). ``b`` may grow with ``P`` as
    ``b = b0 * P**b_exp`` (``b_exp = 0`` for a constant ``b``).

    The Chicago (Keifer-Chu) hyetograph keeps, for every duration around the
    peak, the depth the formula gives; the peak sits at ``r * duration``.
    Block depths are computed from the exact cumulative curve, so the blocks
    add up to the formula's depth for the whole duration.

    A formula is a fit to a city's rain records for return periods ``p_min`` to
    ``p_max`` years (GB 50014, the Chinese outdoor drainage design code, has the
    rain statistics compiled for 2, 3, 5, 10, 20, 30, 50 and 100 years): outside
    that range it is an extrapolation with no data behind it, and with ``b``
    growing as ``P**b_exp`` it need not even grow with ``P`` (the Chengdu formula's
    5-minute intensity is lower for 100 years than for 50, and its 1-hour depth
    for 100,000 years is about its 50-year one). Return periods above ``p_max``
    are refused (:class:`~twin_core.errors.ParameterError`).

    Examples
    --------
    >>> f = StormFormula(A1=16.8, C=0.803, b=12.8, n=0.768, b_exp=0.231)
    >>> round(f.intensity_mm_min(50, 60) * 60, 1)   # 50-year, 60-minute depth in mm
    74.2
    >>> hy = f.hyetograph(50, 3600, step_s=300, peak_ratio=0.4)
    >>> round(hy.total_mm(), 1) == round(f.intensity_mm_min(50, 60) * 60, 1)
    True
    >>> f.intensity_mm_min(1000, 60)
    Traceback (most recent call last):
    ...
    twin_core.errors.ParameterError: return period 1000 years is outside the storm formula's range (1 to 100 years, the return periods it was fitted to); the formula is an extrapolation there (it may even fall as P grows). Use at most 100 years, or a hyetograph of your own (rain=)
    """

    A1: float
    C: float
    b: float
    n: float
    b_exp: float = 0.0
    name: str = ""
    source: str = ""
    p_min: float = 1.0
    p_max: float = 100.0

    def __post_init__(self) -> None:
        for k in ("A1", "C", "b", "n", "b_exp"):
            v = getattr(self, k)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise ParameterError(f"storm formula parameter {k} must be a finite number, got {v!r}")
        for k in ("p_min", "p_max"):
            v = getattr(self, k)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise ParameterError(f"storm formula parameter {k} must be a finite number of years, got {v!r}")
        if not 1.0 <= self.p_min <= self.p_max:
            raise ParameterError(f"storm formula needs 1 <= p_min <= p_max (years), got p_min={self.p_min}, "
                                 f"p_max={self.p_max}")
        if self.A1 <= 0 or self.b < 0 or not 0 < self.n < 1:
            raise ParameterError(f"storm formula needs A1 > 0, b >= 0 and 0 < n < 1, got A1={self.A1}, b={self.b}, n={self.n}")

    def _a_b(self, P: float) -> tuple[float, float]:
        if not (_is_real(P) and P >= 1.0):
            raise ParameterError(f"return period must be a finite number >= 1 year, got {P!r}")
        if not self.p_min <= P <= self.p_max:
            raise ParameterError(
                f"return period {P:g} years is outside the storm formula's range ({self.p_min:g} to {self.p_max:g} "
                "years, the return periods it was fitted to); the formula is an extrapolation there (it may even "
                f"fall as P grows). Use at most {self.p_max:g} years, or a hyetograph of your own (rain=)")
        return self.A1 * (1.0 + self.C * math.log10(P)), self.b * P ** self.b_exp

    def intensity_mm_min(self, P: float, t_min: float) -> float:
        """Average intensity (mm/min) over a duration of ``t_min`` minutes."""
        a, b = self._a_b(P)
        return a / (t_min + b) ** self.n

    def q_l_s_ha(self, P: float, t_min: float) -> float:
        """Design storm intensity in L/(s*ha) (the formula's ``q``)."""
        return 167.0 * self.intensity_mm_min(P, t_min)

    def hyetograph(self, P: float, duration_s: float, step_s: float = 300.0, peak_ratio: float = 0.4) -> Hyetograph:
        """Chicago hyetograph in blocks of ``step_s`` seconds (intensities in mm/h)."""
        if not (_is_real(duration_s) and _is_real(step_s) and duration_s > 0 and step_s > 0):
            raise ParameterError(f"duration and step must be finite numbers > 0 s, got {duration_s!r} and {step_s!r}")
        if not (_is_real(peak_ratio) and 0.0 < peak_ratio < 1.0):
            raise ParameterError(f"peak_ratio r must be in (0, 1), got {peak_ratio}; 0.3-0.5 is usual in China")
        blocks = duration_s / step_s
        if blocks > MAX_HYETOGRAPH_BLOCKS:
            raise ParameterError(
                f"a storm of {duration_s:g} s in blocks of {step_s:g} s would have {blocks:.3g} blocks, more than "
                f"{MAX_HYETOGRAPH_BLOCKS:,}; a design storm lasts minutes to hours (Chinese practice: at most a few "
                "days): give a shorter duration, or a longer step")
        a, b = self._a_b(P)
        n = self.n
        T = duration_s / 60.0
        r = peak_ratio
        tp = r * T

        def F(t):  # cumulative depth (mm) of the formula over duration t (min)
            return a * t / (t + b) ** n

        def cum(tau):
            if tau <= tp:
                return r * (F(tp / r) - F((tp - tau) / r))
            return r * F(tp / r) + (1.0 - r) * F((tau - tp) / (1.0 - r))

        nb = max(int(math.ceil(duration_s / step_s - 1e-9)), 1)
        edges = np.minimum(np.arange(nb + 1) * step_s, duration_s).astype(np.float64)
        c = np.array([cum(e / 60.0) for e in edges])
        depth = np.diff(c)  # mm per block
        return Hyetograph(edges, depth / (np.diff(edges) / 3600.0))


#: The classic Chengdu storm-intensity formula, q = 2806 (1 + 0.803 lg P) / (t + 12.8 P^0.231)^0.768
#: L/(s*ha) (A1 = 2806 / 167 = 16.80 mm/min), as tabulated in the Chinese Water Supply and Drainage
#: Design Handbook (给水排水设计手册, vol. 5, table of city storm formulas). Quoted from that handbook
#: table, not checked against an online copy; Chengdu has since published zoned formulas (2015+) that a
#: real design must use instead. Valid for return periods of 1 to 100 years (see :class:`StormFormula`).
CHENGDU_STORM = StormFormula(
    A1=2806.0 / 167.0, C=0.803, b=12.8, n=0.768, b_exp=0.231, name="Chengdu (classic)",
    source="Water Supply and Drainage Design Handbook vol. 5: q = 2806(1+0.803 lgP)/(t+12.8P^0.231)^0.768 "
           "(classic formula, not checked against an online copy; Chengdu's zoned formulas of 2015+ supersede it "
           "for design); fitted for return periods of 1-100 years",
    p_min=1.0, p_max=100.0,
)


@dataclass
class Inflow:
    """A point inflow hydrograph (m3/s, linear between samples, held at the ends).

    Give the place as ``row``/``col`` or as map ``x``/``y`` (needs the model's
    transform).
    """

    times: np.ndarray
    flows: np.ndarray
    row: int | None = None
    col: int | None = None
    x: float | None = None
    y: float | None = None
    name: str = ""

    def __post_init__(self) -> None:
        self.times, self.flows = _series(self.times, self.flows, f"inflow {self.name!r}", "m3/s")
        if np.any(self.flows < 0):
            raise ParameterError(f"inflow {self.name!r}: flows must be >= 0 m3/s, got a minimum of {self.flows.min()}; "
                                 "model losses with drainage= or infiltration= instead")
        if (self.row is None) != (self.col is None) or (self.x is None) != (self.y is None) or \
                (self.row is None) == (self.x is None):
            raise ParameterError(f"inflow {self.name!r}: give either row and col, or x and y")

    def rate_at(self, t: float) -> float:
        return _interp(self.times, self.flows, t)


@dataclass
class _EdgeSpec:
    kind: str
    cells: object  # slice or index array along the edge
    times: np.ndarray | None = None
    levels: np.ndarray | None = None


@dataclass
class BoundaryConditions:
    """Boundary conditions per edge, or per cell along an edge.

    Every edge starts ``default`` (``"closed"``); :meth:`set` changes a whole
    edge or some of its cells: ``"closed"``, ``"free"`` (free outflow) or
    ``"stage"`` (a fixed water level time series, m) or ``"flux"`` (an inflow per
    unit width time series, m2/s, into the domain; ``levels`` holds the values).
    The edge faces of blocked cells stay closed whatever is set here.

    Examples
    --------
    >>> bc = BoundaryConditions().set("east", "free").set("west", "stage", times=[0, 3600], levels=[10.0, 10.5], cells=slice(0, 5))
    >>> [s.kind for s in bc.specs["west"]]
    ['stage']
    """

    default: str = "closed"
    specs: dict = field(default_factory=lambda: {e: [] for e in EDGES})

    def __post_init__(self) -> None:
        if self.default not in ("closed", "free"):
            raise ParameterError(f"default boundary must be 'closed' or 'free', got {self.default!r}")

    def set(self, edge: str, kind: str, *, cells=None, times=None, levels=None) -> "BoundaryConditions":
        if edge not in EDGES:
            raise ParameterError(f"edge must be one of {list(EDGES)}, got {edge!r}")
        if kind not in BOUNDARY_KINDS:
            raise ParameterError(f"boundary kind must be one of {list(BOUNDARY_KINDS)}, got {kind!r}")
        t = lv = None
        if kind in ("stage", "flux"):
            if times is None or levels is None:
                raise ParameterError(f"a {kind!r} boundary on {edge} needs times= and levels= (m, or m2/s for flux)")
            t, lv = _series(times, levels, f"{kind} on {edge}", "m")
            if kind == "flux" and np.any(lv < 0):
                raise ParameterError(f"a 'flux' boundary on {edge} is an inflow and must be >= 0 m2/s; use 'free' for outflow")
        self.specs[edge].append(_EdgeSpec(kind, slice(None) if cells is None else cells, t, lv))
        return self

"""Parameters of the flood engine (a validated, immutable object)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace

from twin_core.errors import ParameterError

__all__ = ["FloodParameters"]

_DTYPES = ("float64", "float32")


@dataclass(frozen=True)
class FloodParameters:
    """Numerical and output settings of :class:`~simulation.flood.FloodModel`.

    Parameters
    ----------
    theta : float
        de Almeida et al. (2012) weighting, 0 < theta <= 1 (1 = the plain
        Bates et al. 2010 scheme). Default 0.7. It applies as given at the
        CFL step of alpha = 0.7 (``dt_cfl``, whatever the run's ``alpha``); a
        shorter step takes ``1 - theta`` in proportion
        (``1 - (1 - theta) dt / dt_cfl``), so that the smoothing per unit of time
        does not grow as the step shrinks (it would with a fixed theta), be it
        shortened by ``max_dt`` or by a smaller ``alpha``.
    alpha : float
        CFL factor in ``dt = alpha * sqrt(theta) * dx / (u_max + sqrt(g * h_max))``
        (``u_max`` the largest face velocity of the last step; Bates et al. 2010
        use the gravity-wave speed alone, which is too long a step for fast
        supercritical flow), 0 < alpha <= 1 (Bates et al. 2010 recommend 0.7 for
        theta = 1). The
        ``sqrt(theta)`` factor comes from a von Neumann analysis of the theta
        scheme on a 2D grid (the checkerboard mode needs Courant <= sqrt(theta/2));
        without it theta = 0.7, alpha = 0.7 lets a lake at rest drift into a
        growing checkerboard.
    hmin : float
        Minimum flow depth (m) on a face; shallower faces carry no flow, and
        velocities are reported only where the depth exceeds it.
    max_dt, min_dt : float
        Bounds of the adaptive time step (s). A step that must fall below
        ``min_dt`` raises :class:`~twin_core.errors.StabilityError`. The CFL
        step grows without bound as the water gets thin; ``max_dt`` caps it.
        The result does not depend on it: Manning friction is implicit in the
        new discharge (the root of ``q' (1 + a |q'|) = b``, Hou et al. 2018,
        J. Hydrol. 564), which stays monotone for the thin, fast sheet flow of
        steep slopes where the semi-implicit form of Bates et al. (2010) with
        the old ``|q|`` broke into a checkerboard (at 2 s on a 5 m grid from
        about 10 % slope: 11 m/s instead of Manning's 0.6 m/s at 15 %); and the
        theta smoothing is scaled to the CFL step (see ``theta``).
    dtype : {"float64", "float32"}
        Precision of the state arrays (mass balance sums are always float64).
    g : float
        Gravity (m/s2).
    wet_threshold : float
        Depth (m) that counts as "wet" for the time of first wetting.
    snapshot_interval, gauge_interval : float or None
        Seconds between depth snapshots / gauge samples (None: none).
    track_maxima : bool
        Track max depth, max velocity, hazard and wetting time (small cost).
    repair_sweeps : int
        Sweeps of the positivity repair before left-over negatives are clamped.
    threads : int or None
        Threads for the kernels; None: one thread below ``parallel_min_cells``
        active cells (a parallel region costs more than it saves on small
        grids, much more on a loaded machine), else all numba threads.
    parallel_min_cells : int
        See ``threads``.
    skip_dry : bool
        Sweep only the columns of each row where water is or may arrive in this
        step (the span of the wet cells of this row and its neighbours over the
        last two steps, one cell further, and the cells that get rain, an
        inflow or water from a boundary), as production engines such as
        LISFLOOD-FP do. Everything else is dry and still and would stay so bit
        for bit: the result is identical to the dense sweep (``False``), which is
        kept for checks and benchmarks. The wet span is tracked by the engine;
        after writing into ``model.h``, ``qx`` or ``qy`` by hand, call
        ``model.state_changed()`` (``run()`` does it at its start).

    Examples
    --------
    >>> p = FloodParameters(theta=0.8, dtype="float32")
    >>> p.alpha
    0.7
    >>> FloodParameters(theta=0.0)
    Traceback (most recent call last):
    ...
    twin_core.errors.ParameterError: theta must be in (0, 1], got 0.0; use 0.7 (de Almeida et al. 2012) to 1.0
    """

    theta: float = 0.7
    alpha: float = 0.7
    hmin: float = 1e-3
    max_dt: float = 2.0
    min_dt: float = 1e-3
    dtype: str = "float64"
    g: float = 9.81
    wet_threshold: float = 0.01
    snapshot_interval: float | None = None
    gauge_interval: float | None = 60.0
    track_maxima: bool = True
    repair_sweeps: int = 20
    threads: int | None = None
    parallel_min_cells: int = 250_000
    skip_dry: bool = True

    def __post_init__(self) -> None:
        def num(name: str) -> float:
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise ParameterError(f"{name} must be a finite number, got {v!r}")
            return float(v)

        def count(v) -> bool:  # an int, not a bool
            return isinstance(v, int) and not isinstance(v, bool)

        if not 0.0 < num("theta") <= 1.0:
            raise ParameterError(f"theta must be in (0, 1], got {self.theta}; use 0.7 (de Almeida et al. 2012) to 1.0")
        if not 0.0 < num("alpha") <= 1.0:
            raise ParameterError(f"alpha (CFL factor) must be in (0, 1], got {self.alpha}; 0.7 is the usual choice")
        if not 0.0 < num("hmin") < 1.0:
            raise ParameterError(f"hmin must be in (0, 1) m, got {self.hmin}; 0.001 m is typical")
        if num("min_dt") <= 0.0 or num("max_dt") < self.min_dt:
            raise ParameterError(
                f"need 0 < min_dt <= max_dt, got min_dt={self.min_dt}, max_dt={self.max_dt}")
        if self.dtype not in _DTYPES:
            raise ParameterError(f"dtype must be one of {list(_DTYPES)}, got {self.dtype!r}")
        if num("g") <= 0.0:
            raise ParameterError(f"g must be > 0, got {self.g}")
        if num("wet_threshold") <= 0.0:
            raise ParameterError(f"wet_threshold must be > 0 m, got {self.wet_threshold}")
        for name in ("snapshot_interval", "gauge_interval"):
            v = getattr(self, name)
            if v is not None and num(name) <= 0.0:
                raise ParameterError(f"{name} must be > 0 s or None, got {v}")
        if self.threads is not None and (not count(self.threads) or self.threads < 1):
            raise ParameterError(f"threads must be a positive int or None (automatic), got {self.threads!r}")
        if not count(self.parallel_min_cells) or self.parallel_min_cells < 0:
            raise ParameterError(f"parallel_min_cells must be an int >= 0, got {self.parallel_min_cells!r}")
        if not isinstance(self.skip_dry, bool):
            raise ParameterError(f"skip_dry must be True or False, got {self.skip_dry!r}")
        if not isinstance(self.track_maxima, bool):
            raise ParameterError(f"track_maxima must be True or False, got {self.track_maxima!r}")
        if not count(self.repair_sweeps) or self.repair_sweeps < 1:
            raise ParameterError(f"repair_sweeps must be a positive int, got {self.repair_sweeps!r}")

    def replace(self, **changes) -> "FloodParameters":
        """A copy with some fields changed (validated again)."""
        return replace(self, **changes)

    def to_dict(self) -> dict:
        """The parameters as a plain dict."""
        return asdict(self)

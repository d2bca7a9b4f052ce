"""Fundamental diagram of a run with PedPy (optional dependency: ``pip install pedpy``)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from twin_core.errors import ParameterError, SimulationError

__all__ = ["pedpy_fd"]


def pedpy_fd(result, region, frame_rate: float | None = None, walkable=None) -> pd.DataFrame:
    """Voronoi density and speed in ``region`` per recorded frame (PedPy).

    ``result`` is a :class:`~simulation.crowd.CrowdResult` with trajectories;
    ``walkable`` the walkable polygon (default: the region's bounding box
    grown by 5 m). Returns ``frame``, ``time_s``, ``density`` (1/m2), ``speed`` (m/s).
    """
    try:
        import pedpy
    except ImportError:  # pragma: no cover - depends on the environment
        raise SimulationError("PedPy is not installed; `pip install pedpy` or use CrowdResult.fundamental_diagram") from None
    from shapely.geometry import Polygon, box

    tr = result.trajectories
    if tr.empty:
        raise SimulationError("no trajectories were recorded; run with record_interval set")
    times = np.unique(tr["time_s"].to_numpy())
    if frame_rate is None:
        frame_rate = 1.0 / float(np.median(np.diff(times))) if len(times) > 1 else 1.0
    if not frame_rate > 0:
        raise ParameterError(f"frame_rate must be > 0, got {frame_rate}")
    poly = region if not isinstance(region, (list, tuple)) else Polygon(region)
    frame = np.rint(tr["time_s"].to_numpy() * frame_rate).astype(np.int64)
    data = pd.DataFrame({"id": tr["agent"].to_numpy(), "frame": frame, "x": tr["x"].to_numpy(), "y": tr["y"].to_numpy()})
    traj = pedpy.TrajectoryData(data=data, frame_rate=frame_rate)
    wa = pedpy.WalkableArea(walkable if walkable is not None else box(*poly.buffer(5.0).bounds))
    ma = pedpy.MeasurementArea(poly)
    vor = pedpy.compute_individual_voronoi_polygons(traj_data=traj, walkable_area=wa)
    dens, inter = pedpy.compute_voronoi_density(individual_voronoi_data=vor, measurement_area=ma)
    speed = pedpy.compute_individual_speed(traj_data=traj, frame_step=1,
                                           speed_calculation=pedpy.SpeedCalculation.BORDER_SINGLE_SIDED)
    vs = pedpy.compute_voronoi_speed(traj_data=traj, individual_speed=speed, individual_voronoi_intersection=inter,
                                     measurement_area=ma)
    out = dens.reset_index().merge(vs.reset_index(), on="frame", how="inner")
    out["time_s"] = out["frame"] / frame_rate
    return out[["frame", "time_s", "density", "speed"]]

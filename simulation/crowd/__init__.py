"""Pedestrian crowd simulation (evacuation of plazas, stations, building storeys).

Two microscopic models behind one interface, numba kernels parallel over
agents with cell-list neighbour search:

- ``"csm"``: collision-free speed model (Tordeux, Chraibi & Seyfried 2016),
  the model JuPedSim calls CollisionFreeSpeedModel;
- ``"sfm"``: social force model (Helbing, Farkas & Vicsek 2000).

Routing follows a floor field (walking distance to each exit on a fine grid);
exits are chosen by distance, then re-chosen every 2 s by the expected time
out (walking vs the queue ahead; ``CrowdParameters.congestion_aware``).
Agents with a route first pass the area's waypoints in order, each by its
own floor field, then choose an exit from the last one.
No agent ever crosses a wall (a post-step wall constraint). A crowd that
stops moving, and a lasting congestion (above 2 persons/m2 for 10 s), are
reported as :class:`JamEvent` with where and when.

:mod:`simulation.crowd.verification` runs RiMEA 3.0 tests 1, 4, 6 and 12 and
a 1 m door and the 1 m x 2.8 m corridor Seyfried et al. (2009) measured, with
either model (``twin crowd-verify`` writes them as a report); the default
collision-free speed model passes them all (its corridor flow ~10 % under the
measured one), the social force model fails RiMEA 12 and the bottlenecks: see
``docs/crowd_verification.md``.

Examples
--------
>>> from shapely.geometry import box
>>> from simulation.crowd import Agents, CrowdSimulation, WalkableArea
>>> area = WalkableArea(box(0, 0, 8, 5), exits={"east": [(8, 2), (8, 3)]})
>>> agents = Agents.in_region(area, box(0.5, 0.5, 4, 4.5), n=30, seed=0)
>>> res = CrowdSimulation(area, agents).run(until=300)
>>> res.status, res.evacuated, res.exit_usage()["agents"].tolist()
('evacuated', 30, [30])
"""

from simulation.crowd.engine import MODELS, Agents, CrowdParameters, CrowdResult, CrowdSimulation, JamEvent
from simulation.crowd.geometry import FloorField, WalkableArea

__all__ = ["Agents", "CrowdParameters", "CrowdResult", "CrowdSimulation", "FloorField", "JamEvent", "MODELS",
           "WalkableArea", "fundamental_diagram_pedpy"]


def fundamental_diagram_pedpy(result, region, frame_rate: float | None = None, walkable=None):
    """Voronoi density and speed in ``region`` per frame with PedPy (optional dependency).

    Returns a DataFrame with ``frame``, ``density`` (1/m2) and ``speed`` (m/s).
    """
    from simulation.crowd.analysis import pedpy_fd

    return pedpy_fd(result, region, frame_rate, walkable)

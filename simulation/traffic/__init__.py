"""simulation.traffic: static equilibrium assignment and a dynamic mesoscopic model.

Pure engine: DataFrames and arrays in, DataFrames and arrays out; never imports ``cim``.

* :class:`Network`, :class:`Demand` and :func:`assign` (FW / CFW / BFW user equilibrium with BPR costs);
* :class:`MesoModel` (spatial queues, triangular fundamental diagram, spillback, iterated departures);
* readers for TNTP files and SUMO route files; :func:`compare_runs` for what-if tables.
"""

from .assignment import METHODS, AssignmentResult, assign, shortest_path_skims
from .compare import compare_assignments, compare_meso
from .io import od_from_routes, read_sumo_routes, read_tntp, read_tntp_flow, read_tntp_net, read_tntp_trips
from .meso import MesoModel, MesoParameters, MesoResult, route_vehicles
from .network import Demand, Network

__all__ = ["Network", "Demand", "assign", "AssignmentResult", "METHODS", "shortest_path_skims", "read_tntp",
           "read_tntp_net", "read_tntp_trips", "read_tntp_flow", "read_sumo_routes", "od_from_routes", "MesoModel", "MesoParameters",
           "MesoResult", "route_vehicles", "compare_assignments", "compare_meso"]

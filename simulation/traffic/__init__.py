"""simulation.traffic: static equilibrium assignment and a dynamic mesoscopic model.

Pure engine: DataFrames and arrays in, DataFrames and arrays out; never imports ``cim``.
"""

from .assignment import METHODS, AssignmentResult, assign, shortest_path_skims
from .io import read_sumo_routes, read_tntp, read_tntp_flow, read_tntp_net, read_tntp_trips
from .network import Demand, Network

__all__ = ["Network", "Demand", "assign", "AssignmentResult", "METHODS", "shortest_path_skims", "read_tntp",
           "read_tntp_net", "read_tntp_trips", "read_tntp_flow", "read_sumo_routes"]

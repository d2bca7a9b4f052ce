"""BIM/IFC models into the city information model, and compliance checks.

Entry points: :func:`read_model` (IFC -> plain data), :func:`georeference`
(model metres -> twin CRS), :func:`storey_floorplan` (walkable area for the
crowd engine).
"""

from bim_import.floorplan import Floorplan, storey_floorplan
from bim_import.georef import Anchor, Georeference, georeference
from bim_import.model import BimModel, Mesh, read_model

__all__ = ["Anchor", "BimModel", "Floorplan", "Georeference", "Mesh", "georeference", "read_model",
           "storey_floorplan"]

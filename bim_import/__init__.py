"""BIM/IFC models into the city information model, and compliance checks.

Entry points
------------
- :func:`read_model`: an IFC2X3 / IFC4 file -> :class:`BimModel` (storeys,
  elements with property and quantity sets, world meshes in metres, elements
  whose geometry failed with the reason).
- :func:`georeference`: model metres -> the twin CRS (IfcMapConversion or
  ePSet_MapConversion, else IfcSite latitude/longitude and true north, else an
  :class:`Anchor` from the caller).
- :func:`build_building`: the LoD1 building feature (``cim.schema`` class
  ``buildings``), the element table and glTF blobs.
- :func:`import_ifc` / :func:`import_many`: into a store, each file in one
  transaction; many files one process per file (``replace=True`` re-imports a
  building; :func:`delete_building` removes one). :func:`query_elements`
  filters the imported elements by class, storey and property values.
- :func:`check_compliance` / :func:`load_rules`: planning rules (height,
  setback, FAR, coverage, green ratio) and IDS information requirements.
- :func:`record_check` / :func:`list_checks` / :func:`get_check`: a check
  recorded in the twin's store (the regulator's audit trail), as
  ``twin check-bim --save`` and the map server's ``/api/bim/checks`` keep them.
- :func:`to_cityjson`: CityJSON 2.0 (LoD1 and LoD2-style semantic surfaces).
- :func:`storey_floorplan`: walkable area, walls and doors of a storey for the
  crowd engine.

Examples
--------
>>> import bim_import
>>> "storey_floorplan" in bim_import.__all__
True
"""

from bim_import.building import Building, build_building
from bim_import.checks import get_check, list_checks, record_check
from bim_import.cityjson import to_cityjson
from bim_import.compliance import ComplianceReport, RuleSet, check_compliance, load_rules
from bim_import.floorplan import Floorplan, storey_floorplan
from bim_import.georef import Anchor, Georeference, georeference
from bim_import.importer import ImportSummary, delete_building, import_ifc, import_many, query_elements
from bim_import.model import BimModel, Mesh, read_model

__all__ = ["Anchor", "BimModel", "Building", "ComplianceReport", "Floorplan", "Georeference", "ImportSummary", "Mesh",
           "RuleSet", "build_building", "check_compliance", "delete_building", "georeference", "get_check", "import_ifc", "import_many",
           "list_checks", "load_rules", "query_elements", "read_model", "record_check", "storey_floorplan",
           "to_cityjson"]

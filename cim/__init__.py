"""The city information model: feature classes, CRS, stores, import/export, scenarios.

Examples
--------
>>> from cim import FEATURE_CLASSES
>>> sorted(FEATURE_CLASSES)[:3]
['areas', 'buildings', 'parcels']
"""

from cim.raster import Raster, Window
from cim.schema import FEATURE_CLASSES, RASTER_CLASSES, FeatureClass, Field, conform
from cim.store import Store, open_store

__all__ = ["FEATURE_CLASSES", "RASTER_CLASSES", "FeatureClass", "Field", "Raster", "Window", "Store", "conform",
           "open_store"]

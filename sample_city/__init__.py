"""A deterministic Chengdu-like sample city on the real central-Chengdu road network.

``build(size, seed)`` returns a :class:`SampleCity` with a GeoDataFrame for
every feature class of :data:`cim.schema.FEATURE_CLASSES` and the rasters
``dem`` and ``manning``, all in EPSG:4544; ``build_into(path_or_store, ...)``
writes it into a store. The road network is the real one (SUMO, from
OpenStreetMap; see ``sample_city/data/README.md``); buildings, parcels,
terrain, water, POIs and sensors are generated.

Map data (c) OpenStreetMap contributors, ODbL; network from GitHub
Alexia0806/chengdu-sumo-benchmark-config.

Examples
--------
>>> import sample_city
>>> city = sample_city.build("small", seed=0)
>>> len(city["buildings"]) > 100
True
"""

from sample_city._city import ATTRIBUTION, SIZES, ZONING, SampleCity, build, zoning_report
from sample_city._store import build_into

__all__ = ["ATTRIBUTION", "SIZES", "ZONING", "SampleCity", "build", "build_into", "zoning_report"]

"""Importers and exporters: vector files, GeoTIFF, SUMO networks, CityJSON."""

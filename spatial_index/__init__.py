"""spatial_index (under construction)."""

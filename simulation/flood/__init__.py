"""simulation/flood (under construction)."""

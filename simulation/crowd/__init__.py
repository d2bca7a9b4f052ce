"""simulation/crowd (under construction)."""

"""simulation (under construction)."""

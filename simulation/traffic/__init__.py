"""simulation/traffic (under construction)."""

"""viewer (under construction)."""

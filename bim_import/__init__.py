"""bim_import (under construction)."""

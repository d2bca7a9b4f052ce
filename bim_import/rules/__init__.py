"""Rule sets (YAML) and IDS files shipped with bim_import (see bim_import.compliance)."""

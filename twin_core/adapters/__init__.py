"""Adapters: turn twin layers into engine/analysis inputs and results back into the store."""

"""The engines' results show their arrays and tables by shape in a notebook (the dataclass repr printed
~6 kB of numbers for a small flood run)."""

from __future__ import annotations

import doctest

import numpy as np
import pandas as pd

import simulation._display
from simulation.crowd.engine import CrowdResult
from simulation.flood.engine import FloodResult
from simulation.traffic.assignment import AssignmentResult
from simulation.traffic.meso import MesoResult


def test_flood_result_repr_is_short_and_says_what_is_there():
    g = np.random.default_rng(0).random((500, 500))
    r = FloodResult(g, g, g, g, g, np.arange(3.0), np.zeros((3, 500, 500), np.float32),
                    pd.DataFrame({"time_s": [0.0], "depth_m": [0.1]}), pd.DataFrame({"quantity": ["rain"]}),
                    steps=12, sim_time=600.0)
    text = repr(r)
    assert len(text) < 700, text
    assert "max_depth=float64[500x500]" in text and "snapshots=float32[3x500x500]" in text
    assert "gauges=DataFrame[1 row: time_s, depth_m]" in text and "steps=12" in text and "sim_time=600" in text


def test_every_engine_result_uses_the_short_repr():
    for cls in (FloodResult, CrowdResult, AssignmentResult, MesoResult):
        assert cls.__repr__ is simulation._display.compact_repr, cls
    big = pd.DataFrame({"a": range(100_000)})
    m = MesoResult(big, big, big, big, 1.5, 3600.0)
    assert repr(m) == ("<MesoResult trips=DataFrame[100,000 rows: a] link_series=DataFrame[100,000 rows: a] "
                       "trajectories=DataFrame[100,000 rows: a] history=DataFrame[100,000 rows: a] seconds=1.5 "
                       "until=3600>")


def test_display_doctests():
    assert doctest.testmod(simulation._display).failed == 0

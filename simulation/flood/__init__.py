"""Urban flood simulation: a 2D local-inertial engine (Bates et al. 2010, de Almeida et al. 2012).

Pure engine: arrays in, arrays and DataFrames out; kernels in
:mod:`simulation.flood._kernels` (numba, parallel over rows). The CIM adapter
lives in :mod:`twin_core.adapters.flood`.

Examples
--------
>>> import numpy as np
>>> from simulation.flood import FloodModel, FloodParameters, CHENGDU_STORM
>>> rain = CHENGDU_STORM.hyetograph(50, 3600, step_s=300, peak_ratio=0.4)
>>> model = FloodModel(np.zeros((10, 10)), 10.0, rain=rain, params=FloodParameters(gauge_interval=None))
>>> result = model.run(3600)
>>> round(float(np.nanmean(result.depth)) * 1000, 1) == round(rain.total_mm(), 1)
True
"""

from simulation.flood.engine import FloodModel, FloodResult, Gauge
from simulation.flood.forcing import (
    CHENGDU_STORM, BoundaryConditions, Hyetograph, Inflow, RainSeries, RoofRunoff, StormFormula,
)
from simulation.flood.params import FloodParameters

__all__ = [
    "FloodModel", "FloodResult", "FloodParameters", "Gauge", "Hyetograph", "RainSeries", "RoofRunoff", "StormFormula",
    "CHENGDU_STORM", "Inflow", "BoundaryConditions",
]

"""Comparison of two runs (what-if): per-link differences and headline changes."""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["compare_assignments", "compare_meso"]


def compare_assignments(base, other) -> tuple[pd.DataFrame, dict]:
    """Per-link flow/cost differences (other - base) and TSTT change.

    Both results must come from networks with the same link ids.
    """
    a = base.links.set_index("link_id")
    b = other.links.set_index("link_id").reindex(a.index)
    table = pd.DataFrame({"link_id": a.index, "flow_base": a["flow"].to_numpy(), "flow_other": b["flow"].to_numpy(),
                          "cost_base": a["cost"].to_numpy(), "cost_other": b["cost"].to_numpy(),
                          "closed_other": b["closed"].to_numpy()})
    table["flow_diff"] = table["flow_other"] - table["flow_base"]
    with np.errstate(invalid="ignore"):
        table["cost_diff"] = table["cost_other"] - table["cost_base"]
    summary = {"tstt_base": base.tstt, "tstt_other": other.tstt, "tstt_change": other.tstt - base.tstt,
               "tstt_change_pct": 100.0 * (other.tstt - base.tstt) / base.tstt if base.tstt else float("nan"),
               "links_more_flow": int((table["flow_diff"] > 1e-6).sum()),
               "links_less_flow": int((table["flow_diff"] < -1e-6).sum())}
    return table, summary


def compare_meso(base, other) -> tuple[pd.DataFrame, dict]:
    """Per-link total inflow differences and mean trip time / completed trips changes of two meso runs."""
    fa = base.link_series.groupby("link_id", sort=False)["inflow"].sum()
    fb = other.link_series.groupby("link_id", sort=False)["inflow"].sum().reindex(fa.index)
    table = pd.DataFrame({"link_id": fa.index, "vehicles_base": fa.to_numpy(), "vehicles_other": fb.to_numpy()})
    table["vehicles_diff"] = table["vehicles_other"] - table["vehicles_base"]
    sa, sb = base.summary(), other.summary()
    summary = {"mean_trip_time_base_s": sa["mean_trip_time_s"], "mean_trip_time_other_s": sb["mean_trip_time_s"],
               "mean_trip_time_change_s": sb["mean_trip_time_s"] - sa["mean_trip_time_s"],
               "completed_base": sa["completed"], "completed_other": sb["completed"],
               "total_delay_change_veh_s": sb["total_delay_veh_s"] - sa["total_delay_veh_s"]}
    return table, summary

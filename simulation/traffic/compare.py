"""Comparison of two runs (what-if): per-link differences and headline changes."""

from __future__ import annotations

import numpy as np
import pandas as pd

from twin_core.errors import NetworkError

from .network import _duplicates

__all__ = ["compare_assignments", "compare_meso"]


def _link_union(a: pd.DataFrame, b: pd.DataFrame) -> pd.Index:
    """Link ids of ``a`` then those only in ``b`` (a what-if may add or remove roads); ids must be unique."""
    for name, t in (("base", a), ("other", b)):
        dup = _duplicates(t["link_id"])
        if dup:
            raise NetworkError(f"the {name} run has duplicate link ids {dup}; link ids must be unique to compare")
    ia, ib = pd.Index(a["link_id"]), pd.Index(b["link_id"])
    return ia.append(ib[~ib.isin(ia)])


def compare_assignments(base, other) -> tuple[pd.DataFrame, dict]:
    """Per-link flow/cost differences (other - base) and TSTT change.

    The table has every link of either run: a link that exists in only one
    of them (a road added or removed by the what-if) has NaN flow and cost on
    the other side, counts as flow 0 there in ``flow_diff``, and a removed
    link is ``closed_other``.
    """
    ids = _link_union(base.links, other.links)
    a = base.links.set_index("link_id").reindex(ids)
    b = other.links.set_index("link_id").reindex(ids)
    table = pd.DataFrame({"link_id": ids, "flow_base": a["flow"].to_numpy(), "flow_other": b["flow"].to_numpy(),
                          "cost_base": a["cost"].to_numpy(), "cost_other": b["cost"].to_numpy(),
                          "closed_other": np.where(b["closed"].isna(), True, b["closed"]).astype(bool)})
    table["flow_diff"] = table["flow_other"].fillna(0.0) - table["flow_base"].fillna(0.0)
    with np.errstate(invalid="ignore"):
        table["cost_diff"] = table["cost_other"] - table["cost_base"]
    summary = {"tstt_base": base.tstt, "tstt_other": other.tstt, "tstt_change": other.tstt - base.tstt,
               "tstt_change_pct": 100.0 * (other.tstt - base.tstt) / base.tstt if base.tstt else float("nan"),
               "links_more_flow": int((table["flow_diff"] > 1e-6).sum()),
               "links_less_flow": int((table["flow_diff"] < -1e-6).sum())}
    return table, summary


def compare_meso(base, other) -> tuple[pd.DataFrame, dict]:
    """Per-link total inflow differences and mean trip time / completed trips changes of two meso runs.

    Links of either run are listed; one missing from a run has NaN vehicles there and counts as 0 in the diff.
    """
    fa = base.link_series.groupby("link_id", sort=False)["inflow"].sum()
    fb = other.link_series.groupby("link_id", sort=False)["inflow"].sum()
    ids = fa.index.append(fb.index[~fb.index.isin(fa.index)])  # links of either run (roads added or removed)
    fa, fb = fa.reindex(ids), fb.reindex(ids)
    table = pd.DataFrame({"link_id": ids, "vehicles_base": fa.to_numpy(), "vehicles_other": fb.to_numpy()})
    table["vehicles_diff"] = table["vehicles_other"].fillna(0.0) - table["vehicles_base"].fillna(0.0)
    sa, sb = base.summary(), other.summary()
    summary = {"mean_trip_time_base_s": sa["mean_trip_time_s"], "mean_trip_time_other_s": sb["mean_trip_time_s"],
               "mean_trip_time_change_s": sb["mean_trip_time_s"] - sa["mean_trip_time_s"],
               "completed_base": sa["completed"], "completed_other": sb["completed"],
               "total_delay_change_veh_s": sb["total_delay_veh_s"] - sa["total_delay_veh_s"]}
    return table, summary

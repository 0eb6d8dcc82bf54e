"""``make demo``: the main job on the CPU with embedded defaults.

Tunes the hand-crafted baselines for the area above threshold in the ideal scenario and plots
their SNR curves (meta-training of the learned synapse joins here once it is available).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from learnsyn.io import atomic_write_json
from learnsyn.plotting import plot_snr_curves, save_figure
from learnsyn.scenario import make_scenario
from learnsyn.tuning import tune

DEMO_BASELINES = {"exponential": {}, "benna-fusi": {}, "binary": {}, "serial": {}, "cascade": {}}


def cmd_demo(args: argparse.Namespace) -> int:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    synapses, horizon, state_budget = 1000, 2000, 2
    scenario = make_scenario("ideal")
    print(
        f"learnsyn demo: tuning baselines for area (large-n convention), ideal scenario, "
        f"N={synapses}, state budget m={state_budget}, horizon {horizon}",
        file=sys.stderr,
    )
    rows, curves = [], []
    for name, fixed in DEMO_BASELINES.items():
        result = tune(
            name,
            scenario,
            synapses=synapses,
            metric="area",
            fixed=fixed,
            max_state=state_budget,
            horizon=horizon,
            convention="large-n",
        )
        data = result.to_json()
        rows.append(data)
        curves.append({"label": f"{name} (tuned)", "ages": data["ages"], "snr": data["snr"]})
        m = data["metrics"]
        print(
            f"  {name:12s} area {m['area']:9.2f}  lifetime {m['lifetime']:6.0f}  "
            f"initial SNR {m['initial_snr']:6.2f}  log area {m['log_area']:7.2f}  "
            f"params {result.best_params}",
            file=sys.stderr,
        )
    fig = plot_snr_curves(
        curves,
        synapses=synapses,
        threshold=1.0,
        convention="large-n",
        title=f"tuned baselines, ideal scenario, N={synapses}",
    )
    save_figure(fig, out / "snr_curves.png")
    atomic_write_json(out / "baselines.json", rows)
    print(f"plot: {out / 'snr_curves.png'}\nresults: {out / 'baselines.json'}", file=sys.stderr)
    return 0

"""TensorBoard logging of a meta-training run: scalars, SNR-curve figures, histograms, hparams.

Scalars (every ``log_every`` iterations): objective, area, lifetime, initial SNR, log-time area,
estimator standard error, gradient norm, synapse-steps per second, learning rate. Every
``figure_every`` iterations (0: never, and the baselines are not tuned): the learned SNR curve
against the tuned baselines (log-log) and histograms of the parameters. At the end:
hyperparameters with the final metrics, written in the run's own directory.
"""

from __future__ import annotations

import math
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

SCALARS = (
    "objective",
    "area",
    "lifetime",
    "initial_snr",
    "log_area",
    "snr_stderr",
    "grad_norm",
    "synapse_steps_per_second",
    "lr",
)
#: the strongest baseline of the size (science.md section 7) and the hand-crafted family
FIGURE_BASELINES = ("optimal-linear", "exponential", "benna-fusi")


class RunLogger:
    def __init__(
        self, run_dir: Path, config, scenario, device, log=print, purge_step=None, baselines=None
    ):
        """``purge_step``: a resumed run's first iteration; TensorBoard drops the events an
        earlier writer logged at or after it, so the replayed iterations leave one curve.
        ``baselines``: the figure's baselines already tuned for this run's setting (rows of
        ``tune_baselines_for_run``), written to ``baselines.json`` so ``compare`` reuses them."""
        from torch.utils.tensorboard import SummaryWriter

        self.run_dir = Path(run_dir)
        self.config = config
        self.scenario = scenario
        self.log = log
        self.writer = SummaryWriter(log_dir=str(self.run_dir), purge_step=purge_step)
        self._baselines: list[dict] | None = None
        if baselines is not None:
            from learnsyn.io import atomic_write_json

            self._baselines = list(baselines)
            if self._baselines:
                atomic_write_json(self.run_dir / "baselines.json", self._baselines)

    def baselines(self) -> list[dict]:
        """The figure's tuned baselines, tuned once per run (``baselines.json``, which
        ``compare`` reuses)."""
        if self._baselines is None:
            from learnsyn.tuning import tune_baselines_for_run

            self._baselines = tune_baselines_for_run(
                self.config,
                self.scenario,
                FIGURE_BASELINES,
                self.run_dir / "baselines.json",
                self.log,
            )
        return self._baselines

    def log_iteration(self, iteration: int, record: dict, result, model) -> None:
        cfg = self.config
        last = iteration == cfg.iterations - 1
        if iteration % cfg.log_every == 0 or last:
            for key in SCALARS:
                value = record.get(key)
                if value is not None and math.isfinite(value):
                    self.writer.add_scalar(f"train/{key}", value, iteration)
            self.writer.add_scalar("train/skipped", float(record["skipped"]), iteration)
        if cfg.figure_every > 0 and (iteration % cfg.figure_every == 0 or last):
            self._figure(iteration, result)
            for name, param in model.named_parameters():
                values = param.detach().cpu().float()
                # TensorBoard cannot bin inf or nan, nor values whose squares overflow
                if bool(torch.isfinite(values.pow(2).sum())):
                    self.writer.add_histogram(f"params/{name}", values, iteration)
        self.writer.flush()

    def _figure(self, iteration: int, result) -> None:
        from learnsyn.plotting import plot_snr_curves

        learned = {
            "label": f"learned {self.config.cell} (iteration {iteration})",
            "ages": list(range(self.config.horizon)),
            "snr": result.snr,
            "snr_stderr": result.snr_stderr,
        }
        fig = plot_snr_curves(
            [learned, *self.baselines()],
            synapses=self.config.synapses,
            threshold=self.config.threshold,
            convention=self.config.convention,
            title=f"{self.config.task}, N={self.config.synapses}, m={self.config.state_size}",
        )
        self.writer.add_figure("snr_curve", fig, iteration, close=True)

    def log_hparams(self, result: dict) -> None:
        hparams = {
            k: v
            for k, v in asdict(self.config).items()
            if isinstance(v, (int, float, str, bool)) and v is not None
        }
        hparams["task_params"] = str(self.config.task_params)
        # runs that differ only there were one row (review, session 35): the cell's parameters
        # and the settings derived from defaults (burn-in, gradient burn-in, ...)
        hparams["cell_params"] = str(self.config.cell_params)
        for key, value in self.config.derived().items():
            if isinstance(value, (int, float, str, bool)):
                hparams[key] = value
        metrics = result.get("evaluation", {}).get("metrics") or result["training_estimate"]
        final = {
            f"hparam/{k}": float(v)
            for k, v in metrics.items()
            if isinstance(v, (int, float)) and np.isfinite(v)
        }
        self._drop_earlier_hparams()
        self.writer.add_hparams(hparams, final, run_name=".")

    def _drop_earlier_hparams(self) -> None:
        """A finished run evaluated again (another ``--eval-batch``) wrote a second set of
        hparams at step 0, which no purge removes: TensorBoard showed both (review, session
        35). ``add_hparams`` writes each set to an events file of its own, holding nothing
        else: those are removed first."""
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

        for path in self.run_dir.glob("events.out.tfevents.*"):
            single = EventAccumulator(str(path), size_guidance={"scalars": 1})
            try:
                single.Reload()
                tags = single.Tags()
                hparams = bool(single.PluginTagToContent("hparams"))
            except (KeyError, OSError, ValueError):  # no hparams there, or not readable
                continue
            others = any(tags.get(kind) for kind in ("images", "histograms", "tensors"))
            scalars = [t for t in tags.get("scalars", []) if not t.startswith("hparam/")]
            if hparams and not others and not scalars:
                path.unlink(missing_ok=True)

    def close(self) -> None:
        self.writer.flush()
        self.writer.close()

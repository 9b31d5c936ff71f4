"""Experiment tracking (MLflow by default, W&B, or none) and the figures a run reports.

MLflow writes to its local file store, `OUT/mlruns`, unless a tracking URI is given (for example
`sqlite:///runs.db` for its database store); browse it with `MLFLOW_ALLOW_FILE_STORE=true mlflow ui
--backend-store-uri OUT/mlruns`. With `report_to=none` nothing here imports MLflow.
"""

from __future__ import annotations

import os
import resource
import sys
from pathlib import Path

from seedloop.core.errors import ConfigError


class Tracker:
    """Does nothing: `report_to=none`, and the base of the real ones."""

    def log_params(self, params: dict) -> None: ...

    def log_metrics(self, metrics: dict, step: int) -> None: ...

    def log_artifacts(self, folder: Path) -> None: ...

    def finish(self, status: str = "FINISHED") -> None: ...


class MlflowTracker(Tracker):
    def __init__(self, out: Path, *, tracking_uri: str | None, experiment: str, run_name: str | None):
        if not tracking_uri:
            # MLflow 3.x keeps its file store in maintenance mode and refuses it unless asked; we ask:
            # it needs no server and no database migrations (which take ~10 s on 2 cores)
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        import mlflow

        self.mlflow = mlflow
        mlflow.set_tracking_uri(tracking_uri or (Path(out).resolve() / "mlruns").as_uri())
        mlflow.set_experiment(experiment)
        self.run = mlflow.start_run(run_name=run_name or Path(out).name)

    def log_params(self, params: dict) -> None:
        self.mlflow.log_params({k: str(v)[:500] for k, v in params.items()})

    def log_metrics(self, metrics: dict, step: int) -> None:
        self.mlflow.log_metrics({k: float(v) for k, v in metrics.items() if v is not None}, step=step)

    def log_artifacts(self, folder: Path) -> None:
        for name in ("metrics.json", "train_config.yaml", "loss_curve.png"):
            if (Path(folder) / name).is_file():
                self.mlflow.log_artifact(str(Path(folder) / name))

    def finish(self, status: str = "FINISHED") -> None:
        self.mlflow.end_run(status=status)


class WandbTracker(Tracker):
    def __init__(self, out: Path, *, experiment: str, run_name: str | None):
        try:
            import wandb
        except ImportError:
            raise ConfigError("report_to=wandb needs the wandb package: pip install wandb") from None
        self.run = wandb.init(project=experiment, name=run_name or Path(out).name, dir=str(out))

    def log_params(self, params: dict) -> None:
        self.run.config.update(params, allow_val_change=True)

    def log_metrics(self, metrics: dict, step: int) -> None:
        self.run.log(metrics, step=step)

    def finish(self, status: str = "FINISHED") -> None:
        self.run.finish(exit_code=0 if status == "FINISHED" else 1)


def open_tracker(report_to: str, out: Path, *, tracking_uri: str | None = None, experiment: str = "seedloop",
                 run_name: str | None = None, main_process: bool = True) -> Tracker:
    if report_to == "none" or not main_process:
        return Tracker()
    if report_to == "mlflow":
        return MlflowTracker(out, tracking_uri=tracking_uri, experiment=experiment, run_name=run_name)
    if report_to == "wandb":
        return WandbTracker(out, experiment=experiment, run_name=run_name)
    raise ConfigError(f"report_to should be mlflow, wandb or none, found {report_to!r}")


def peak_memory_mb() -> dict:
    """Peak memory so far: the accelerator's allocator where there is one, and the process's RSS."""
    import torch

    rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    peak = {"peak_rss_mb": round(rss_kb / (1024 if sys.platform != "darwin" else 1024 * 1024), 1)}
    if torch.cuda.is_available():
        peak["peak_gpu_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return peak


def plot_losses(history: list[dict], evals: list[dict], path: Path) -> None:
    """Train loss (per step) and eval loss (per evaluation) against steps, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from seedloop.core.atomic import atomic_path

    fig, ax = plt.subplots(figsize=(6, 3.5))
    if history:
        ax.plot([h["step"] for h in history], [h["loss"] for h in history], label="train", lw=1)
    if evals:
        ax.plot([e["step"] for e in evals], [e["eval_loss"] for e in evals], "o-", label="eval")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("loss (response tokens)")
    ax.legend()
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)

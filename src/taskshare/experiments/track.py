"""Experiment tracking: a run's config, metrics and files logged to TensorBoard and/or MLflow (the
`track` extra), switched on in YAML (`track: {tensorboard: DIR, mlflow: URI}`) or from Python:

    with open_trackers({"tensorboard": "runs/tb"}) as tracker:
        fit(model, task, train, val, config, callbacks=[tracker.epoch_callback("b/lp_ft")])
        tracker.log_metrics({"b/test_accuracy": 0.91})

Both libraries are imported only when asked for. MLflow is driven through its client object
(`MlflowClient(tracking_uri=...)`), so nothing global is set.
"""
from __future__ import annotations

import contextlib
import json
import shutil
import time
from pathlib import Path
from typing import Any, Callable, Iterator

from ..errors import ConfigError, TaskshareError

KINDS = ("tensorboard", "mlflow")


def _flat(prefix: str, value: Any, out: dict[str, str]) -> dict[str, str]:
    if isinstance(value, dict):
        for k, v in value.items():
            _flat(f"{prefix}.{k}" if prefix else str(k), v, out)
    else:
        out[prefix] = json.dumps(value, default=str) if not isinstance(value, str) else value
    return out


class TensorBoardTracker:
    """Scalars and the config (as text) in TensorBoard event files under `log_dir`; files are copied
    to log_dir/artifacts (TensorBoard has no artefact store) and listed as text."""

    def __init__(self, log_dir: str | Path):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as exc:
            raise TaskshareError("track.tensorboard needs the tensorboard package: pip install 'taskshare[track]'") from exc
        self.log_dir = Path(log_dir)
        self.writer = SummaryWriter(log_dir=str(self.log_dir))

    def log_config(self, config: dict) -> None:
        flat = _flat("", config, {})
        self.writer.add_text("config", "\n".join(f"    {k}: {v}" for k, v in flat.items()), 0)

    def log_metrics(self, metrics: dict[str, float], step: int = 0) -> None:
        for name, value in metrics.items():
            self.writer.add_scalar(name, float(value), step)

    def log_artifact(self, path: str | Path) -> None:
        path = Path(path)
        target = self.log_dir / "artifacts"
        target.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target / path.name)
        self.writer.add_text("artifacts", path.name, 0)

    def close(self) -> None:
        self.writer.close()


class MLflowTracker:
    """One MLflow run in experiment `experiment` at `uri` (a database URI such as sqlite:///mlflow.db,
    or a local folder: MLflow 3 asks for MLFLOW_ALLOW_FILE_STORE=true in the environment for that)."""

    def __init__(self, uri: str, experiment: str = "taskshare"):
        try:
            from mlflow.exceptions import MlflowException
            from mlflow.tracking import MlflowClient
        except ImportError as exc:
            raise TaskshareError("track.mlflow needs the mlflow package: pip install 'taskshare[track]'") from exc
        try:
            self.client = MlflowClient(tracking_uri=uri)
            found = self.client.get_experiment_by_name(experiment)
            experiment_id = found.experiment_id if found else self.client.create_experiment(experiment)
            self.run_id = self.client.create_run(experiment_id).info.run_id
        except MlflowException as exc:
            raise TaskshareError(f"track.mlflow = {uri!r}: MLflow refused it ({str(exc).split('. ')[0]}); for a local "
                                 f"folder set MLFLOW_ALLOW_FILE_STORE=true, or give a database URI") from None

    def log_config(self, config: dict) -> None:
        from mlflow.entities import Param
        params = [Param(k, v[:6000]) for k, v in _flat("", config, {}).items()]
        for i in range(0, len(params), 100):          # MLflow takes at most 100 params per batch
            self.client.log_batch(self.run_id, params=params[i:i + 100])

    def log_metrics(self, metrics: dict[str, float], step: int = 0) -> None:
        from mlflow.entities import Metric
        now = int(time.time() * 1000)
        batch = [Metric(_mlflow_name(k), float(v), now, step) for k, v in metrics.items()]
        for i in range(0, len(batch), 1000):
            self.client.log_batch(self.run_id, metrics=batch[i:i + 1000])

    def log_artifact(self, path: str | Path) -> None:
        self.client.log_artifact(self.run_id, str(path))

    def close(self) -> None:
        self.client.set_terminated(self.run_id)


def _mlflow_name(name: str) -> str:
    # MLflow keys allow letters, digits, _ - . / and spaces; everything else becomes _
    return "".join(c if c.isalnum() or c in "_-./ " else "_" for c in name)


class Trackers:
    """Several trackers behind one interface (the empty set logs nothing)."""

    def __init__(self, trackers: list):
        self.trackers = trackers

    def log_config(self, config: dict) -> None:
        for t in self.trackers:
            t.log_config(config)

    def log_metrics(self, metrics: dict[str, float], step: int = 0) -> None:
        finite = {k: v for k, v in metrics.items() if isinstance(v, (int, float)) and v == v}
        for t in self.trackers:
            t.log_metrics(finite, step)

    def log_artifact(self, path: str | Path) -> None:
        if Path(path).is_file():
            for t in self.trackers:
                t.log_artifact(path)

    def epoch_callback(self, prefix: str) -> Callable[[dict], None]:
        """A `fit(..., callbacks=[...])` callback logging every number of each epoch's entry."""
        def log(entry: dict) -> None:
            step = int(entry.get("epoch", 0))
            self.log_metrics({f"{prefix}/{k}": v for k, v in entry.items()
                              if k != "epoch" and isinstance(v, (int, float)) and not isinstance(v, bool)}, step)
        return log

    def close(self) -> None:
        for t in self.trackers:
            t.close()


def check_spec(spec: dict) -> None:
    unknown = [k for k in spec if k not in KINDS]
    if unknown:
        raise ConfigError(f"config.track: unknown key {unknown[0]!r}; allowed keys: {', '.join(KINDS)}")
    for k, v in spec.items():
        if not isinstance(v, str) or not v:
            raise ConfigError(f"config.track.{k} = {v!r}; expected a folder or URI string")


@contextlib.contextmanager
def open_trackers(spec: dict | None) -> Iterator[Trackers]:
    """Trackers from `{tensorboard: DIR, mlflow: URI}` (either, both or none), closed at the end."""
    spec = spec or {}
    check_spec(spec)
    trackers: list = []
    try:
        if "tensorboard" in spec:
            trackers.append(TensorBoardTracker(spec["tensorboard"]))
        if "mlflow" in spec:
            trackers.append(MLflowTracker(spec["mlflow"]))
        yield Trackers(trackers)
    finally:
        for t in trackers:
            t.close()


def log_run(spec: dict | None, out: Path, config: dict) -> None:
    """After a command's run: its config, every metric in its saved results and its report files."""
    if not spec:
        return
    with open_trackers(spec) as tracker:
        tracker.log_config(config)
        tracker.log_metrics(run_metrics(out))
        for name in ("report.html", "results.json", "multitask_results.json", "adapt_results.json", "advice.json"):
            tracker.log_artifact(out / name)


def run_metrics(out: Path) -> dict[str, float]:
    """Flat metric names from whatever results the run folder holds."""
    metrics: dict[str, float] = {}
    results = out / "results.json"
    if results.exists():
        for r in json.loads(results.read_text()).get("results", []):
            for name, value in r.get("test", {}).items():
                metrics[f"transfer/{r['strategy']}/k{r['labels_per_class']}/seed{r['seed']}/{name}"] = value
    mt = out / "multitask_results.json"
    if mt.exists():
        for r in json.loads(mt.read_text()).get("results", []):
            for task, value in r.get("main", {}).items():
                metrics[f"multitask/{r['mode']}/seed{r['seed']}/{task}"] = value
            if r.get("delta_m") is not None:
                metrics[f"multitask/{r['mode']}/seed{r['seed']}/delta_m"] = r["delta_m"]
    ad = out / "adapt_results.json"
    if ad.exists():
        data = json.loads(ad.read_text())
        metrics["adapt/proxy_a_distance_raw"] = data.get("proxy_a_distance_raw", float("nan"))
        for r in data.get("rows", []):
            for key in ("source_val", "target", "feature_distance"):
                if key in r:
                    metrics[f"adapt/{r['method']}/{key}"] = r[key]
    return metrics

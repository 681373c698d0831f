"""The domain-adaptation experiment behind `taskshare run` with `mode: adapt`: measure how different
the domains are, train source-only and each method, report target accuracy where target labels are
given (they never reach training or selection)."""
from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..adapt import ADAPTERS, fit_adaptation, fit_source_free, proxy_a_distance
from ..config import from_dict, typed
from ..data import to_dataset
from ..errors import ConfigError, TaskshareError
from ..io import atomic_write_bytes
from ..validate import check_pair, check_training_labels, read_npz
from .modes import RUNNERS
from .runs import guard, only_run, rebuild_report, resumable, track
from .specs import AdaptData, DomainFile, ModelSpec
from ..models.surgery import split_head
from ..models.trunk_head import TrunkHead
from ..tasks import Task
from ..train import TrainConfig
from ..train.config import under
from ..train.loop import evaluate


@dataclass
@typed()
class AdaptSpec:
    # "shot": source-free (SHOT), adapts the source-only model on the target alone; after source_only
    methods: list[str] = field(default_factory=lambda: ["source_only", *ADAPTERS.names()])
    options: dict[str, dict] = field(default_factory=dict)   # method -> hyperparameters (shot: pseudo_weight, min_source_accuracy)
    weight: float | None = None
    selection: str = "source"
    pull_limit: float | None = 0.2    # the adaptation's pull on the features, at most this times the source's; null: unbounded
    train: TrainConfig = field(default_factory=lambda: TrainConfig(epochs=20, lr=2e-3))


@dataclass
@typed()
class AdaptExperiment:
    mode: str = "adapt"
    task: dict[str, Any] = field(default_factory=lambda: {"name": "label", "kind": "multiclass", "num_classes": 10})
    data: AdaptData = field(default_factory=lambda: AdaptData(builtin="mnist1d_shift"))
    model: ModelSpec = field(default_factory=lambda: ModelSpec("cnn1d"))
    adapt: AdaptSpec = field(default_factory=AdaptSpec)
    output: str = "runs/adapt"
    track: dict[str, Any] = field(default_factory=dict)   # {tensorboard: DIR, mlflow: URI}: log the run there

    def __post_init__(self) -> None:
        if (self.data.builtin is None) == (self.data.source is None or self.data.target is None):
            raise ConfigError.at("data", ": give 'builtin' (mnist1d_shift), or both 'source' and 'target' npz files")
        if self.data.builtin not in (None, "mnist1d_shift"):
            raise ConfigError.at("data.builtin", f" = {self.data.builtin!r}; expected 'mnist1d_shift'")
        known = {"source_only", "shot", *ADAPTERS.names()}
        bad = [m for m in self.adapt.methods if m not in known]
        if bad:
            raise ConfigError.at("adapt.methods", f" has {bad[0]!r}; expected some of {sorted(known)}")
        methods = self.adapt.methods
        if "shot" in methods and ("source_only" not in methods or methods.index("source_only") > methods.index("shot")):
            raise ConfigError.at("adapt.methods", f" = {methods}; shot adapts the source-only model, so "
                                 f"expected source_only listed before shot")
        if self.adapt.pull_limit is not None and not self.adapt.pull_limit > 0:
            raise ConfigError.at("adapt.pull_limit", f" = {self.adapt.pull_limit!r}; expected a positive number "
                                 f"or null (unbounded)")


def load_adapt(data: dict) -> AdaptExperiment:
    _check_domains(data.get("data"))
    return from_dict(AdaptExperiment, data, "config")


def _check_domains(data: Any) -> None:
    """A domain given as anything but an npz file is named with what adapt takes; the dataclass
    conversion alone said 'expected DomainFile or NoneType', a type the user never wrote."""
    if not isinstance(data, dict):
        return
    for side in ("source", "target"):
        spec = data.get(side)
        if spec is None or (isinstance(spec, dict) and "npz" in spec):
            continue
        raise ConfigError.at(f"data.{side}", f" = {spec!r}; adapt reads each domain from an .npz file: "
                             f"{{npz: FILE, x: x, y: y}} (arrays x and y; the target's y is optional). "
                             f"A CSV, image folder or other source: save its inputs and labels with "
                             f"numpy.savez first", owner="config")


def _read(spec: DomainFile, labels_required: bool, where: str) -> tuple[np.ndarray, np.ndarray | None]:
    path = Path(spec.npz)
    arrays = read_npz(path, [spec.x, spec.y] if labels_required else [spec.x], [spec.y] if spec.y else [], where)
    x, y = arrays[spec.x], arrays.get(spec.y) if spec.y else None
    if labels_required and y is None:
        raise TaskshareError(f"{path} ({where}) needs a label array; name it with y")
    check_pair(x, y if y is not None else x, f"{where} file {path}")
    return x.astype(np.float32), y


def build_domains(config: AdaptExperiment, seed: int = 0):
    """(source x, y), target x, target labels or None."""
    if config.data.builtin == "mnist1d_shift":
        from ..data.mnist1d import generate
        n = config.data.samples
        src = generate(n, seed=42)
        tgt = generate(n, seed=1000 + seed, shear_scale=1.2, corr_noise_scale=0.45)
        return (src["x"], src["y"]), tgt["x"], tgt["y"]
    xs, ys = _read(config.data.source, True, "source")  # type: ignore[arg-type]
    xt, yt = _read(config.data.target, False, "target")  # type: ignore[arg-type]
    return (xs, ys), xt, yt


def make_model(config: AdaptExperiment, x: torch.Tensor, out_dim: int) -> TrunkHead:
    in_features = x.shape[1] if x.dim() in (2, 4) else 1   # width, length (1-D signals) or channels
    net = config.model.build(in_features, out_dim)
    trunk, head = split_head(net, example=x[:2])
    return TrunkHead(trunk, head)


def _split(spec: AdaptData, seed: int, xs, ys, xt, yt):
    """Source train and validation pairs, the unlabelled target inputs, and the target's labelled test
    set (None without target labels), all drawn from one generator seeded by `seed`."""
    g = np.random.default_rng(seed)
    order = g.permutation(len(xs))
    n_val = max(1, int(len(xs) * spec.val_fraction))
    x_s, y_s = torch.as_tensor(xs[order]), torch.as_tensor(ys[order])
    val, train = (x_s[:n_val], y_s[:n_val]), (x_s[n_val:], y_s[n_val:])
    x_t = torch.as_tensor(xt)
    test = None
    if yt is not None:
        t_order = g.permutation(len(xt))
        n_test = max(1, int(len(xt) * spec.test_fraction))
        test = to_dataset((x_t[t_order[:n_test]], torch.as_tensor(yt)[t_order[:n_test]]), "target test data")
        x_t = x_t[t_order[n_test:]]
    return train, val, x_t, test


def run_adapt(config: AdaptExperiment, out: Path, console) -> dict:
    seed = config.adapt.train.seed
    (xs, ys), xt, yt = build_domains(config, seed)
    task = Task(config.task.get("name", "label"), config.task.get("kind", "multiclass"),
                config.task.get("num_classes"), config.task.get("num_outputs"))
    check_training_labels(task, ys, "source labels")
    if yt is not None:
        task.check_labels(yt, "target labels")
    train, val, x_t, test = _split(config.data, seed, xs, ys, xt, yt)
    n = min(1000, len(val[0]), len(x_t))
    raw = proxy_a_distance(val[0][:n].reshape(n, -1), x_t[:n].reshape(n, -1)) if n >= 4 else float("nan")
    console.print(f"how different are these domains: proxy A-distance {raw:.2f} on the raw inputs "
                  f"(0 = indistinguishable, 2 = separable)")
    rows, reference, source_state = [], None, None
    for method in config.adapt.methods:
        model, history = _train_method(config, task, method, train, val, x_t, source_state, reference)
        if method == "source_only":
            source_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        row = {"method": method, "source_val": evaluate(model, task, to_dataset(val, "source validation"))[task.main_metric]}
        if method == "source_only":
            reference = row["source_val"]      # later methods are checked against it
        if getattr(history, "warning", None):
            row["warning"] = history.warning
        if test is not None:
            row["target"] = evaluate(model, task, test)[task.main_metric]
        if method == "source_only":
            row["feature_distance"] = _feature_distance(model, val[0][:n], x_t[:n])
            console.print(f"  ... {row['feature_distance']:.2f} on the source-only model's features")
        rows.append(row)
        target = f", target {task.main_metric} {row['target']:.3f}" if "target" in row else ""
        console.print(f"{method:>14}: source validation {task.main_metric} {row['source_val']:.3f}{target}")
    result = {"proxy_a_distance_raw": raw, "rows": rows, "selection": config.adapt.selection, "metric": task.main_metric,
              "chance": 1 / task.out_dim if task.kind == "multiclass" else None}   # for the report's warning
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out / "adapt_results.json", json.dumps(result, indent=2).encode())
    return result


def _train_method(config: AdaptExperiment, task: Task, method: str, train, val, x_t, source_state, reference):
    """A fresh model (seeded alike for every method) trained by `method`: shot adapts the source-only
    weights on the target inputs alone; the others train from the source and the unlabelled target."""
    torch.manual_seed(config.adapt.train.seed)
    model = make_model(config, train[0], task.out_dim)
    options, train_config = config.adapt.options.get(method, {}), under(config.adapt.train, method)
    if method == "shot":        # source-free: the source-only model and the target inputs, nothing else
        model.load_state_dict(source_state)
        # source-only's source validation accuracy, a number: SHOT keeps a source model below its floor
        return model, fit_source_free(model, task, x_t, train_config, source_accuracy=reference, **options)
    spec = None if method == "source_only" else {"name": method, **options}
    return model, fit_adaptation(model, task, train, x_t, val, train_config, method=spec, weight=config.adapt.weight,
                                 selection=config.adapt.selection, pull_limit=config.adapt.pull_limit,
                                 source_only_score=reference)


def _feature_distance(model: TrunkHead, source: torch.Tensor, target: torch.Tensor) -> float:
    """Proxy A-distance between the trunk's features of source and target rows (the model left in eval mode)."""
    n = len(source)
    model.eval()
    with torch.no_grad():
        device = next(model.parameters()).device
        fs = model.trunk(source.to(device)).reshape(n, -1).cpu()
        ft = model.trunk(target.to(device)).reshape(n, -1).cpu()
    return proxy_a_distance(fs, ft)


@RUNNERS.register("adapt")
def run_adapt_command(args, raw: dict, console) -> int:
    """`taskshare run CONFIG` with `mode: adapt`: every method against source-only, then the reports."""
    only_run(args, "an adaptation config")
    config = load_adapt(raw)
    from .preflight import check_adapt
    check_adapt(config)
    out = Path(args.out or config.output)
    guard(args, out)
    if args.resume:
        config = replace(config, adapt=replace(config.adapt, train=resumable(config.adapt.train,
                                                                             args.shared_out or config.output)))
    result = run_adapt(config, out, console)
    from ..evaluate.report.adapt import below_chance
    for method in below_chance(result):
        console.print(f"[yellow]{method}: target {result['metric']} is at or below chance "
                      f"({result['chance'] * 100:.1f}%)[/]", highlight=False)
    rebuild_report(out)
    track(config, out)
    return 0

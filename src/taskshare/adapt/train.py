"""Training with a labelled source and an unlabelled target drawn together each step; model
selection that never reads target labels."""
from __future__ import annotations

from typing import Any, Iterator

import torch
from torch import Tensor, nn

from ..data import make_loader, to_dataset
from ..distributed import shard
from ..errors import TaskshareError
from ..models.trunk_head import TrunkHead
from ..tasks import Task
from ..train.config import TrainConfig
from ..train.device import resolve_device
from ..train.loop import History, _budget, evaluate, predict, train_loop
from .base import ADAPTERS, DomainMethod
from .shift import domain_weights

SELECTIONS = ("source", "iwv")


def build_method(spec: Any) -> DomainMethod | None:
    """None (source only), a name, a {name: ..., hyperparameter: ...} mapping, or an instance."""
    if spec is None or spec == "source_only":
        return None
    if isinstance(spec, DomainMethod):
        return spec
    if isinstance(spec, str):
        spec = {"name": spec}
    if not isinstance(spec, dict) or "name" not in spec:
        raise TaskshareError(f"a domain adaptation method is a name or a mapping with 'name'; got {spec!r}")
    from ..config import from_dict
    return from_dict(ADAPTERS.get(spec["name"]), {k: v for k, v in spec.items() if k != "name"},
                     f"adaptation {spec['name']}")


def target_inputs(target: Any) -> Tensor:
    """Target inputs from a tensor/array, an (x, y) pair (labels ignored) or a Dataset."""
    if isinstance(target, (tuple, list)) and len(target) == 2:
        target = target[0]
    if isinstance(target, torch.utils.data.Dataset):
        ds = to_dataset(target, "target data")
        target = torch.stack([torch.as_tensor(ds[i][0]) for i in range(len(ds))])  # type: ignore[arg-type]
    x = torch.as_tensor(target)
    if x.numel() == 0 or len(x) == 0:
        raise TaskshareError("target data is empty; expected at least one unlabelled target input")
    return x.float() if not x.is_floating_point() else x


class PairedLoader:
    """(x_source, x_target), y_source batches: one pass over the source, the target cycled alongside
    (reshuffled each cycle), same batch size."""

    def __init__(self, source: Any, target: Tensor, batch_size: int, seed: int = 0):
        self.source = make_loader(source, batch_size, shuffle=True, seed=seed)
        self.target, self.batch_size = target, min(batch_size, len(target))
        self.generator = torch.Generator().manual_seed(seed + 1)
        self._order, self._pos = torch.randperm(len(target), generator=self.generator), 0

    def __len__(self) -> int:
        return len(self.source)

    def _next_target(self) -> Tensor:
        if self._pos + self.batch_size > len(self.target):
            self._order, self._pos = torch.randperm(len(self.target), generator=self.generator), 0
        idx = self._order[self._pos:self._pos + self.batch_size]
        self._pos += self.batch_size
        return self.target[shard(idx)]                       # this process's share, like the source

    def state_dict(self) -> dict:
        """Both orders (source and target cycle) for run checkpoints."""
        return {"source": self.source.generator.get_state(), "generator": self.generator.get_state(),
                "order": self._order.clone(), "pos": self._pos}

    def load_state_dict(self, state: dict) -> None:
        self.source.generator.set_state(state["source"])
        self.generator.set_state(state["generator"])
        self._order, self._pos = state["order"].clone(), int(state["pos"])

    def __iter__(self) -> Iterator[tuple[tuple[Tensor, Tensor], Tensor]]:
        for x, y in self.source:
            yield (x, self._next_target()), y


def fit_adaptation(model: TrunkHead, task: Task, source: Any, target: Any, val: Any = None,
                   config: TrainConfig | None = None, method: Any = None, weight: float | None = None,
                   selection: str = "source", target_test: Any = None) -> History:
    """Train `model` (trunk + head) on labelled `source` data while adapting to unlabelled `target`
    inputs with `method` (None = source only, the baseline), its loss times `weight` (default: the
    method's own default, 1 for most). `val`: labelled SOURCE validation data
    for early stopping and selection; `selection`: "source" (plain source validation score) or "iwv"
    (importance-weighted validation loss, weights from a source-vs-target classifier on the trunk's
    features; Sugiyama et al., JMLR 2007). `target_test`: labelled target data used only to report
    target metrics in the history (never for selection)."""
    config = config or TrainConfig()
    if selection not in SELECTIONS:
        raise TaskshareError(f"selection must be one of {SELECTIONS}, got {selection!r}")
    if not isinstance(model, TrunkHead):
        raise TaskshareError(f"domain adaptation needs a trunk + head model (TrunkHead), got {type(model).__name__}")
    method = build_method(method)
    source = to_dataset(source, "source data")
    x_target = target_inputs(target)
    x0 = torch.as_tensor(source[0][0])
    if tuple(x_target.shape[1:]) != tuple(x0.shape):
        raise TaskshareError(f"target inputs have shape {tuple(x_target.shape[1:])} per sample, the source "
                             f"{tuple(x0.shape)}; expected the same input shape in both domains")
    if method is not None and method.needs_classes and task.kind not in ("multiclass", "binary"):
        raise TaskshareError(f"{method.name} reads class predictions; task {task.name!r} is {task.kind}, "
                             f"expected a classification task (use dann, dan or coral)")
    device = resolve_device(config.device)
    model.to(device)
    loader = PairedLoader(source, x_target, config.batch_size, config.seed)
    if method is not None:
        with torch.no_grad():
            was = model.training
            model.eval()
            width = model.trunk(x0[None].to(device)).reshape(1, -1).shape[1]
            model.train(was)
        method.build(width, task.out_dim)
        method.to(device)
    total_steps = max(1, _budget(config, len(loader))[0] * len(loader))
    if weight is None:
        weight = method.default_weight if method is not None else 0.0
    step = [0]

    def objective(m: nn.Module, xs, y):
        x_s, x_t = xs
        n = len(x_s)
        if method is None:
            loss = task.loss(m(x_s), y)
            return loss, {task.name: loss}
        f = m.trunk(torch.cat([x_s, x_t]))
        logits = m.head(f)
        f = f.reshape(len(f), -1)
        loss = task.loss(logits[:n], y)
        extra = method.loss(f[:n], f[n:], logits[:n], logits[n:], step[0] / total_steps)
        step[0] += 1
        return loss + weight * extra, {task.name: loss, method.name: extra}

    val_ds = to_dataset(val, "source validation data") if val is not None else None
    test_ds = to_dataset(target_test, "target test data") if target_test is not None else None

    def validate(m: nn.Module):
        metrics = evaluate(m, task, val_ds, device, config.eval_batch_size)
        if test_ds is not None:   # reported only; never part of the score
            metrics.update({f"target_{k}": v for k, v in evaluate(m, task, test_ds, device, config.eval_batch_size).items()})
        if selection == "source":
            return metrics[task.main_metric], metrics
        score = -importance_weighted_loss(m, task, val_ds, x_target, device)
        metrics["iw_loss"] = -score
        return score, metrics

    higher = task.higher_is_better if selection == "source" else True
    return train_loop(model, loader, objective, validate if val_ds is not None else None, config, higher,
                      label=f"adapt {method.name if method else 'source only'}", metric=task.main_metric,
                      extra_params=list(method.parameters()) if method is not None else ())


@torch.no_grad()
def importance_weighted_loss(model: TrunkHead, task: Task, val: Any, x_target: Tensor, device) -> float:
    """The source validation loss with each sample weighted by p_target / p_source of its features."""
    was = model.training
    model.eval()
    xs = torch.stack([torch.as_tensor(val[i][0]) for i in range(len(val))]) if not hasattr(val, "x") else val.x
    fs = torch.cat([model.trunk(xs[i:i + 1024].to(device)).reshape(len(xs[i:i + 1024]), -1).float().cpu()
                    for i in range(0, len(xs), 1024)])
    xt = x_target[torch.randperm(len(x_target), generator=torch.Generator().manual_seed(0))[:len(xs)]]
    ft = torch.cat([model.trunk(xt[i:i + 1024].to(device)).reshape(len(xt[i:i + 1024]), -1).float().cpu()
                    for i in range(0, len(xt), 1024)])
    weights = domain_weights(fs, ft)
    out, y = predict(model, val, device)
    if task.kind == "multiclass":
        per_sample = torch.nn.functional.cross_entropy(out.float(), y.long(), reduction="none")
    else:
        per_sample = torch.stack([task.loss(out[i:i + 1], y[i:i + 1]) for i in range(len(y))])
    model.train(was)
    return float((weights * per_sample).mean())

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
from ..train.hooks import LoopHooks
from ..train.loop import History, LoopOptions, epoch_budget, evaluate, train_loop
from .base import ADAPTERS, DomainMethod
from .safety import Progress, bound_gradient, check_source_score, ramp, source_gradient
from .selection import dev_score, importance_weighted_loss, iwv_score, weighted_losses  # noqa: F401

SELECTIONS = ("source", "iwv", "dev")


def build_method(spec: Any) -> DomainMethod | None:
    """None (source only), a name, a {name: ..., hyperparameter: ...} mapping, or an instance."""
    if spec is None or spec == "source_only":
        return None
    return ADAPTERS.build(spec)


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
                   selection: str = "source", target_test: Any = None, pull_limit: float | None = 0.2,
                   source_only_score: float | None = None) -> History:
    """Train `model` (trunk + head) on labelled `source` data while adapting to unlabelled `target`
    inputs with `method` (None = source only, the baseline), its loss times `weight` (default: the
    method's own default, 1 for most) times a ramp from 0 to 1 over training (methods with a gradient
    reversal ramp the reversal instead). `pull_limit`: the adaptation gradient reaching the features is
    at most this many times the source loss's gradient there (its largest so far; None: unbounded),
    so the source task is learned whatever the method's scale. `val`: labelled SOURCE validation data for early
    stopping and selection; `selection`: "source" (plain source validation score), "iwv"
    (importance-weighted validation loss; Sugiyama et al., JMLR 2007) or "dev" (deep embedded
    validation, the same with a control variate; You et al., ICML 2019), weights from a
    source-vs-target classifier on the trunk's features. `target_test`: labelled target data used only
    to report target metrics in the history (never for selection). `source_only_score`: the
    source-only model's source validation score; when given, a run ending more than 0.1 below it
    logs a warning naming the method (as does one near chance without it), and the history's
    `warning` says why."""
    config = config or TrainConfig()
    _check_arguments(model, selection, pull_limit)
    method = build_method(method)
    source = to_dataset(source, "source data")
    x_target = target_inputs(target)
    x0 = _check_domains(task, method, source, x_target)
    device = resolve_device(config.device)
    model.to(device)
    loader = PairedLoader(source, x_target, config.batch_size, config.seed)
    if method is not None:
        _build_for(method, model, task, x0, device)
    progress = Progress(epoch_budget(config, len(loader))[0] * len(loader))
    if weight is None:
        weight = method.default_weight if method is not None else 0.0
    objective = adaptation_objective(task, method, weight, progress, pull_limit)
    val_ds = to_dataset(val, "source validation data") if val is not None else None
    test_ds = to_dataset(target_test, "target test data") if target_test is not None else None
    validate = adaptation_validator(task, selection, val_ds, test_ds, x_target, device, config.eval_batch_size) \
        if val_ds is not None else None
    options = LoopOptions(task.higher_is_better if selection == "source" else True,
                          label=f"adapt {method.name if method else 'source only'}", metric=task.main_metric)
    history = train_loop(model, loader, objective, validate, config, options, AdaptationHooks(method, progress))
    if method is not None and history.best_epoch >= 0 and val_ds is not None:
        _warn_if_source_lost(history, task, method, source_only_score)
    return history


def _check_arguments(model: Any, selection: str, pull_limit: float | None) -> None:
    if selection not in SELECTIONS:
        raise TaskshareError(f"selection must be one of {SELECTIONS}, got {selection!r}")
    if not isinstance(model, TrunkHead):
        raise TaskshareError(f"domain adaptation needs a trunk + head model (TrunkHead), got {type(model).__name__}")
    if pull_limit is not None and not pull_limit > 0:
        raise TaskshareError(f"pull_limit = {pull_limit!r}; expected a positive number or None (unbounded)")


def _check_domains(task: Task, method: DomainMethod | None, source: Any, x_target: Tensor) -> Tensor:
    """The first source input, once target inputs are known to share its shape and the method to suit
    the task."""
    x0 = torch.as_tensor(source[0][0])
    if tuple(x_target.shape[1:]) != tuple(x0.shape):
        raise TaskshareError(f"target inputs have shape {tuple(x_target.shape[1:])} per sample, the source "
                             f"{tuple(x0.shape)}; expected the same input shape in both domains")
    if method is not None and method.needs_classes and task.kind not in ("multiclass", "binary"):
        raise TaskshareError(f"{method.name} reads class predictions; task {task.name!r} is {task.kind}, "
                             f"expected a classification task (use dann, dan or coral)")
    return x0


def _warn_if_source_lost(history: History, task: Task, method: DomainMethod, source_only_score: float | None) -> None:
    """The history's `warning` (also logged) where the selected epoch's source validation score says the
    adaptation term drowned the source task (see check_source_score)."""
    score = history.epochs[history.best_epoch].get(f"val_{task.main_metric}", float("nan"))
    message = check_source_score(method.name, score, source_only_score, task.higher_is_better,
                                 task.out_dim if task.kind == "multiclass" else None)
    if message:
        history.warning = message      # type: ignore[attr-defined]


def _build_for(method: DomainMethod, model: TrunkHead, task: Task, x0: Tensor, device: torch.device) -> None:
    """The method's own modules (discriminators, ...) sized by the trunk's feature width."""
    with torch.no_grad():
        was = model.training
        model.eval()
        width = model.trunk(x0[None].to(device)).reshape(1, -1).shape[1]
        model.train(was)
    method.build(width, task.out_dim)
    method.to(device)


class AdaptationHooks(LoopHooks):
    """The method's trainable parameters go to the optimizer; its state and the ramp's progress into
    run checkpoints (discriminators, extra classifiers, running estimates); the backward is
    scaled_backward's."""

    def __init__(self, method: DomainMethod | None, progress: Progress):
        params = [p for p in method.parameters() if p.requires_grad] if method is not None else []
        state = {"adapt_progress": progress} if method is None else {"adapt_progress": progress, "adapt_method": method}
        super().__init__(params, state)
        self._backward = scaled_backward(progress)

    def backward(self, loss: Tensor, parts: dict[str, Tensor], scale: float = 1.0) -> None:
        self._backward(loss, parts, scale)


def adaptation_validator(task: Task, selection: str, val_ds: Any, test_ds: Any, x_target: Tensor,
                         device: torch.device, batch_size: int):
    """validate(model) -> (score, metrics) on labelled SOURCE validation data; target test metrics are
    reported only, never part of the score."""

    def validate(m: nn.Module):
        metrics = evaluate(m, task, val_ds, device, batch_size)
        if test_ds is not None:
            metrics.update({f"target_{k}": v for k, v in evaluate(m, task, test_ds, device, batch_size).items()})
        if selection == "source":
            return metrics[task.main_metric], metrics
        losses, weights = weighted_losses(m, task, val_ds, x_target, device)
        metrics["iw_loss"] = iwv_score(losses, weights)
        metrics["dev_loss"] = dev_score(losses, weights)
        return -metrics[f"{'iw' if selection == 'iwv' else 'dev'}_loss"], metrics

    return validate


def scaled_backward(progress: Progress):
    """The loop's backward hook: the loss times the grad scaler's factor (1 without one), the factor
    kept where the pull bound reads it, so the bound compares scaled gradients with a scaled limit."""

    def backward(loss: Tensor, parts: dict, scale: float = 1.0) -> None:
        progress.loss_scale = float(scale)
        (loss * scale if scale != 1.0 else loss).backward()

    return backward


def adaptation_objective(task: Task, method: DomainMethod | None, weight: float, progress: Progress,
                         pull_limit: float | None):
    """The per-step loss: the source task loss plus the ramped, bounded adaptation term."""

    def objective(m: nn.Module, xs, y):
        x_s, x_t = xs
        n = len(x_s)
        if method is None:
            loss = task.loss(m(x_s), y)
            return loss, {task.name: loss}
        # one trunk pass per domain: BatchNorm normalises each batch by its own statistics, the source as
        # in source-only training (one pass over both mixed them: -7 points on rotated digits at weight 0)
        f = torch.cat([m.trunk(x_s), m.trunk(x_t)])
        logits = m.head(f)
        class_weights = method.class_weights()
        if class_weights is not None and task.kind == "multiclass":
            loss = torch.nn.functional.cross_entropy(logits[:n].float(), y.long(), weight=class_weights.to(logits.device),
                                                     ignore_index=-1)
        else:
            loss = task.loss(logits[:n], y)
        p = progress.fraction
        if pull_limit is not None and torch.is_grad_enabled():
            g_f, g_logits = source_gradient(loss, f, logits)
            scale = lambda: progress.loss_scale   # noqa: E731
            max_norm, max_sum = progress.limits(g_f, pull_limit)
            f_adapt = bound_gradient(f, max_norm, scale, max_sum)
            # gradients through predictions are bounded at the logits too: the head's weights take them
            # there, before the features' bound (entropy, JAN, MCC, pseudo-labels moved the head freely)
            max_norm, max_sum = progress.limits(g_logits[:n], pull_limit, "logits")
            logits_adapt = bound_gradient(m.head(f_adapt), max_norm, scale, max_sum)
        else:
            f_adapt, logits_adapt = f, logits
        flat = f_adapt.reshape(len(f_adapt), -1)
        kwargs = {"labels": y} if method.needs_labels else {}
        extra = method.loss(flat[:n], flat[n:], logits_adapt[:n], logits_adapt[n:], p, **kwargs)
        progress.step += 1
        scale = weight if method.ramps_itself else weight * ramp(p)
        return loss + scale * extra, {task.name: loss, method.name: extra}

    return objective

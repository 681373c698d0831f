"""Multi-task training on the shared loop: per-task losses (unknown labels skipped), weighted and
summed, a soft-sharing penalty added when the model has one; validation by the mean over tasks of
each task's main metric (sign-corrected, so higher is always better)."""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import torch
from torch import Tensor, nn

from ..data import to_dataset
from ..data.multitask import SINGLE_TASK_SAMPLERS, MultiTaskDataset, MultiTaskLoader, TaskLoader, rows_of_tasks
from ..distributed import evaluation_part, gather_rows, world
from ..errors import TaskshareError
from ..tasks import Task
from .config import TrainConfig
from .device import resolve_device
from .loop import History, LoopOptions, train_loop
from .shares import label_weighted


def multitask_loader(data: Any, config: TrainConfig, shuffle: bool = True, sampler: str = "proportional",
                     temperature: float = 2.0, seed: int | None = None):
    """Batches (x, {task: y}) from a MultiTaskDataset, or from one dataset per task (a mapping)."""
    seed = config.seed if seed is None else seed
    if isinstance(data, MultiTaskDataset):
        return MultiTaskLoader(data, config.batch_size, shuffle, seed)
    if isinstance(data, Mapping):
        return TaskLoader(data, config.batch_size, sampler, temperature, seed, shuffle)
    raise TaskshareError(f"multi-task data must be a MultiTaskDataset or a mapping task -> data, got {type(data).__name__}")


def check_multitask_data(tasks: Sequence[Task], data: Any, where: str) -> None:
    """Labels fit each task, and each task has at least one known label."""
    names = [t.name for t in tasks]
    labels = data.labels if isinstance(data, MultiTaskDataset) else {t: to_dataset(d, f"{where} of task {t!r}").y
                                                                        for t, d in data.items()}
    missing = [n for n in names if n not in labels]
    if missing:
        raise TaskshareError(f"{where} has no labels for task {missing[0]!r}; it has {list(labels)}")
    for task in tasks:
        y = labels[task.name]
        task.check_labels(y, where)
        if not task.known(task.prepare_target(y)).any():
            raise TaskshareError(f"task {task.name!r}: every label in the {where} is missing; "
                                 f"expected at least one known label")


@torch.no_grad()
def evaluate_multitask(model: nn.Module, tasks: Sequence[Task], data: Any, batch_size: int = 1024,
                       device: torch.device | None = None) -> dict[str, dict[str, float]]:
    """Each task's metrics over its known labels. Under several processes each runs its contiguous
    part of the inputs and the outputs are gathered, so every process computes the same metrics."""
    device = device or next(model.parameters()).device
    was_training = model.training
    model.eval()
    by_name = {t.name: t for t in tasks}
    results: dict[str, dict[str, float]] = {}
    if isinstance(data, MultiTaskDataset):
        outs = _outputs(model, data.x, list(by_name), batch_size, device)
        for t, task in by_name.items():
            results[t] = task.metrics(outs[t], data.labels[t])
    else:
        for t, task in by_name.items():
            ds = to_dataset(data[t], f"data of task {t!r}")
            results[t] = task.metrics(_outputs(model, ds.x, [t], batch_size, device)[t], ds.y)
    model.train(was_training)
    return results


def _outputs(model: nn.Module, x: Tensor, names: list[str], batch_size: int, device) -> dict[str, Tensor]:
    """Each task's outputs for every row of x, on the CPU; split between processes when there are several."""
    split = evaluation_part(len(x))
    part = split if split is not None else range(len(x))
    chunks: dict[str, list[Tensor]] = {t: [] for t in names}
    for start in range(part.start, part.stop, batch_size):
        out = model(x[start:min(start + batch_size, part.stop)].to(device), tasks=names)
        for t in names:
            chunks[t].append(out[t].float().cpu())
    return {t: gather_rows(torch.cat(c)) if split is not None else torch.cat(c) for t, c in chunks.items()}


def selection_score(tasks: Sequence[Task], metrics: Mapping[str, Mapping[str, float]]) -> float:
    """Mean over tasks of the main metric, negated where lower is better; tasks whose metric is
    undefined on this split (NaN, e.g. R2 of a single target) are left out."""
    values = [(1 if t.higher_is_better else -1) * metrics[t.name][t.main_metric] for t in tasks]
    finite = [v for v in values if v == v]
    return sum(finite) / len(finite) if finite else float("nan")


def fit_multitask(model: nn.Module, tasks: Sequence[Task], train: Any, val: Any = None,
                  config: TrainConfig | None = None, weights: Mapping[str, float] | None = None,
                  sampler: str | None = None, temperature: float = 2.0, balancer: Any = None,
                  representation: bool = False) -> History:
    """Train a multi-task model (HardSharing, SoftSharing, CrossStitch, or any module whose forward
    takes (x, tasks=[...]) and returns {task: output}).

    train, val: a MultiTaskDataset (shared inputs, some labels missing), or a mapping task -> (x, y)
    or Dataset (one dataset per task, batches drawn by `sampler`: default "joint", a batch of every
    task per step, with a gradient-balancing method or GradNorm, which need every task's gradient in one
    step; "proportional" otherwise). weights: fixed loss weights (default 1 each). balancer: a loss-weighting
    or gradient-balancing method (name, mapping or instance; see taskshare.balancing);
    representation: balance gradients w.r.t. the shared features (one trunk backward) instead of the
    shared parameters; shared inputs only (one dataset per task gives each task its own rows, whose
    feature gradients never meet).
    """
    config = config or TrainConfig()
    tasks = list(tasks)
    by_name = {t.name: t for t in tasks}
    weights = dict(weights or {})
    unknown = [w for w in weights if w not in by_name]
    if unknown:
        raise TaskshareError(f"loss weight for unknown task {unknown[0]!r}; tasks are {list(by_name)}")
    check_multitask_data(tasks, train, "training data")
    if val is not None:
        check_multitask_data(tasks, val, "validation data")
    device = resolve_device(config.device)
    balanced = _balanced_step(balancer, weights, tasks, model, representation, device)
    loader = multitask_loader(train, config, True, _sampler(sampler, balanced, train, representation), temperature)

    def validate(m: nn.Module):
        metrics = evaluate_multitask(m, tasks, val, config.eval_batch_size, device)
        flat = {f"{t}_{k}": v for t, d in metrics.items() for k, v in d.items()}
        return selection_score(tasks, metrics), flat

    penalty = model.penalty if callable(getattr(model, "penalty", None)) else None
    options = LoopOptions(True, penalty=penalty, label="multi-task", metric="mean task score")
    return train_loop(model, loader, _objective(by_name, weights, balanced), validate if val is not None else None,
                      config, options, balanced)


def _balanced_step(balancer: Any, weights: Mapping[str, float], tasks: list[Task], model: nn.Module,
                   representation: bool, device: torch.device):
    """The BalancedStep that writes the balanced update (None without a balancing method)."""
    if balancer is None:
        return None
    from ..balancing import build_balancer
    from .balanced import BalancedStep
    if weights:
        raise TaskshareError("give either fixed loss weights or a balancing method, not both")
    balanced = BalancedStep(build_balancer(balancer, len(tasks)), tasks, model, representation)
    balanced.balancer.to(device)
    return balanced


def _sampler(sampler: str | None, balanced, train: Any, representation: bool = False) -> str:
    """One dataset per task: a gradient-balancing method combines the per-task gradients of one step,
    and GradNorm the per-task gradient norms of one step, so their steps hold a batch of every task
    ("joint"); a single-task batch would leave them one gradient, which they can only pass on (no
    balancing at all)."""
    method = None if balanced is None else balanced.balancer
    check_balanced_sampling(method, train, sampler, representation)
    if sampler is None:
        return "joint" if _per_step(method) and isinstance(train, Mapping) else "proportional"
    return sampler


def check_balanced_sampling(method: Any, train: Any, sampler: str | None, representation: bool = False) -> None:
    """fit_multitask's refusals of a balancing method (a built one, or None) on one dataset per task,
    as a check of its own so that a caller training several models (compare_sharing) can make it before
    the first one trains."""
    if not (_per_step(method) and isinstance(train, Mapping) and len(train) > 1):
        return
    if representation and method.needs != "losses":
        # each task owns its rows of a joint batch: the tasks' feature gradients never overlap, their
        # Gramian is diagonal, and UPGrad or PCGrad give the plain average (parameters within 3e-8)
        raise TaskshareError(f"{method.name} with representation=True on one dataset per task: each "
                             f"task's gradient w.r.t. the shared features lives on its own rows of the batch, so "
                             f"the gradients never meet there (a diagonal Gramian: no conflict to balance); use "
                             f"representation="
                             f"False (balancing over the shared parameters, where the tasks' gradients do meet), "
                             f"or shared inputs (a MultiTaskDataset) for the representation level")
    if sampler in SINGLE_TASK_SAMPLERS:
        what = "gradient norms" if method.needs == "losses" else "gradients"
        raise TaskshareError(f"{method.name} balances the per-task {what} of one step, but sampler "
                             f"{sampler!r} gives each step one task's batch; use sampler='joint' (a batch of every "
                             f"task per step, the default with {method.name}), or a loss-weighting method")


def _per_step(method: Any) -> bool:
    """The method reads every task's gradient (or gradient norm) at one step."""
    return method is not None and (method.needs != "losses" or method.needs_layer_gradients)


def _objective(by_name: Mapping[str, Task], weights: Mapping[str, float], balanced):
    """The loop's objective: each labelled task's loss (weighted by its share of the labels across
    processes), summed with the fixed weights or combined by the balancing method."""
    def objective(m: nn.Module, x: Tensor, ys: dict[str, Tensor]):
        out = balanced.forward(m, x, list(ys)) if balanced else m(x, tasks=list(ys))
        out = rows_of_tasks(out, ys)        # a joint batch: each task's own rows
        parts = {t: by_name[t].loss(out[t], y) for t, y in ys.items()}
        if world()[1] > 1:
            parts, share = label_weighted(parts, ys, len(x), by_name)
            if balanced:
                balanced.set_share(share)
        if balanced:
            return balanced.total(parts, ys), parts
        total = sum(weights.get(t, 1.0) * loss for t, loss in parts.items())
        return total, parts

    return objective

"""Compare ways of sharing across tasks: one model per task (the baseline), hard sharing, soft sharing
and cross-stitch, with per-task metrics, delta_m against the single-task models, parameter counts
and inference time for all tasks together."""
from __future__ import annotations

import copy
import statistics
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import torch
from torch import Tensor, nn

from ..data.multitask import MultiTaskDataset
from ..errors import TaskshareError
from ..evaluate.delta import delta_m, relative_gains, sharing_warnings
from ..models import SHARING, HardSharing, build_sharing
from ..tasks import Task
from .config import TrainConfig, under
from .device import resolve_device
from .multitask import check_balanced_sampling, evaluate_multitask, fit_multitask

MODES = ("single", "hard", "soft", "cross_stitch")


@dataclass
class SharingResult:
    mode: str
    seed: int
    test: dict[str, dict[str, float]]   # task -> its metrics on the test split
    main: dict[str, float]              # task -> its main metric
    params: int
    inference_ms: float                 # one forward pass for every task over the test inputs
    seconds: float
    delta_m: float | None = None        # % against the single-task models (None without them)
    balancer: str | None = None         # the balancing method this mode trained with (None: equal weighting)
    gains: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def _restrict(data: Any, task: Task) -> Any:
    """One task's part of the data: its known rows of a shared-input set, or its own dataset."""
    if isinstance(data, MultiTaskDataset):
        y = data.labels[task.name]
        known = task.known(task.prepare_target(y))
        rows = known.reshape(len(y), -1).any(-1).nonzero().flatten()
        return MultiTaskDataset(data.x[rows], {task.name: y[rows]})
    return {task.name: data[task.name]}


def _inputs(data: Any) -> list[tuple[Tensor, list[str] | None]]:
    if isinstance(data, MultiTaskDataset):
        return [(data.x, None)]
    return [(torch.as_tensor(d[0] if isinstance(d, (tuple, list)) else d.x), [t]) for t, d in data.items()]


@torch.no_grad()
def inference_ms(models: Sequence[nn.Module], data: Any, batch_size: int, rounds: int = 5) -> float:
    """Median wall time of one pass over the test inputs by every model (all tasks answered)."""
    device = next(models[0].parameters()).device
    inputs = _inputs(data)
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        for m in models:
            m.eval()
            for x, tasks in inputs:
                for s in range(0, len(x), batch_size):
                    m(x[s:s + batch_size].to(device), tasks=tasks if tasks is None or set(tasks) <= set(m.heads) else None)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - t0)
    return 1000 * statistics.median(times)


def sharing_modes() -> tuple[str, ...]:
    """Every mode compare_sharing accepts: the single-task baseline and each registered architecture."""
    return ("single", *SHARING.names())


def _balancer_label(balancer: Any, num_tasks: int, representation: bool) -> str | None:
    if balancer is None:
        return None
    from ..balancing import build_balancer
    name = build_balancer(balancer, num_tasks).name
    return f"{name}, representation level" if representation else name


def compare_sharing(trunk_factory: Callable[[], nn.Module], tasks: Sequence[Task], train: Any, val: Any, test: Any,
                    modes: Sequence[str] = MODES, config: TrainConfig | None = None, coupling: float = 1e-3,
                    layers: str | None = None, sampler: str | None = None, temperature: float = 2.0,
                    weights: Mapping[str, float] | None = None, balancer: Any = None,
                    representation: bool = False, options: Mapping[str, Mapping[str, Any]] | None = None
                    ) -> list[SharingResult]:
    """Train each mode on the same data from the same seed; model selection on `val`, metrics on
    `test`. `trunk_factory()` returns a fresh trunk (an nn.Sequential for cross-stitch). `balancer`
    applies to every mode but the single-task baseline, each mode starting from a fresh copy: it balances
    over the parameters two or more tasks reach (hard's trunk, the cross-stitch units, MMoE's and PLE's
    shared experts; soft sharing has none, so there only loss weighting changes the update).
    `representation` applies to the modes with shared features (hard, MTAN); the others balance at the
    parameter level, and each row's `balancer` says which. `sampler`: as fit_multitask's (None: a batch
    of every task per step with a gradient method, "proportional" otherwise). `options`: each mode's own settings, e.g.
    {"mmoe": {"num_experts": 8}}."""
    config = config or TrainConfig()
    tasks = list(tasks)
    bad = [m for m in modes if m not in sharing_modes()]
    if bad:
        raise TaskshareError(f"unknown sharing mode {bad[0]!r}; expected one of {sharing_modes()}")
    example = _inputs(train)[0][0][:2]

    def build(mode: str) -> nn.Module:
        return build_sharing(mode, trunk_factory, tasks, example, coupling, layers, **dict((options or {}).get(mode, {})))

    _refuse_before_training([m for m in modes if m != "single"], build, tasks, train, sampler, balancer, representation)
    results: list[SharingResult] = []
    device = resolve_device(config.device)
    for mode in modes:
        started = time.perf_counter()
        with torch.random.fork_rng(devices=[device.index or 0] if device.type == "cuda" else []):
            torch.manual_seed(config.seed)
            if mode == "single":
                models, test_metrics, used = *_train_single(trunk_factory, tasks, train, val, test, example, config), None
            else:
                model, used = _train_shared(mode, build(mode), tasks, train, val, config, sampler, temperature,
                                            weights, balancer, representation)
                test_metrics, models = evaluate_multitask(model, tasks, test, config.eval_batch_size), [model]
        seconds = time.perf_counter() - started
        results.append(SharingResult(
            mode, config.seed, test_metrics, {t.name: test_metrics[t.name][t.main_metric] for t in tasks},
            sum(p.numel() for m in models for p in m.parameters()),
            inference_ms(models, test, config.eval_batch_size), seconds, balancer=used))
    _against_single(results, {t.name: t.higher_is_better for t in tasks})
    return results


def _train_single(trunk_factory: Callable[[], nn.Module], tasks: list[Task], train: Any, val: Any, test: Any,
                  example: Tensor, config: TrainConfig) -> tuple[list[nn.Module], dict[str, dict[str, float]]]:
    """The baseline: one model per task, each on its own task's rows; their test metrics."""
    models, test_metrics = [], {}
    for task in tasks:
        model = HardSharing(trunk_factory(), [task], example)
        fit_multitask(model, [task], _restrict(train, task), _restrict(val, task), under(config, "single", task.name))
        test_metrics.update(evaluate_multitask(model, [task], _restrict(test, task), config.eval_batch_size))
        models.append(model)
    return models, test_metrics


def _train_shared(mode: str, model: nn.Module, tasks: list[Task], train: Any, val: Any, config: TrainConfig,
                  sampler: str | None, temperature: float, weights: Mapping[str, float] | None, balancer: Any,
                  representation: bool) -> tuple[nn.Module, str | None]:
    """One sharing architecture trained on every task; the label of the balancing it trained with."""
    # a method instance keeps state (GradVac's targets, FAMO's logits): one copy per mode
    method = copy.deepcopy(balancer) if isinstance(balancer, nn.Module) else balancer
    level = at_features(model, representation)
    fit_multitask(model, tasks, train, val, under(config, mode), weights, sampler, temperature, method, level)
    return model, _balancer_label(method, len(tasks), level)


def at_features(model: nn.Module, representation: bool) -> bool:
    """Whether the balancing runs at the representation level: asked for, and the model has shared features."""
    return representation and hasattr(model, "forward_features") and hasattr(model, "forward_heads")


def _refuse_before_training(shared_modes: list[str], build: Callable[[str], nn.Module], tasks: list[Task],
                            train: Any, sampler: str | None, balancer: Any, representation: bool) -> None:
    """fit_multitask's refusals of the balancing method on this data, made before anything trains: met
    at the first shared mode, they came after the single-task baselines had trained (minutes)."""
    if balancer is None or not shared_modes:
        return
    from ..balancing import build_balancer
    method = build_balancer(balancer, len(tasks))
    check_balanced_sampling(method, train, sampler)
    if not representation:
        return
    try:
        check_balanced_sampling(method, train, sampler, True)
    except TaskshareError:
        # refused at the representation level, which a mode gets only if its model has shared features:
        # build the shared modes' models (untrained, off the caller's random stream) until one has them
        with torch.random.fork_rng(devices=[]):
            if any(at_features(build(mode), True) for mode in shared_modes):
                raise


def _against_single(results: list[SharingResult], higher_is_better: dict[str, bool]) -> None:
    """Each row's gains and delta_m against the single-task models, and the warnings they raise."""
    single = next((r for r in results if r.mode == "single"), None)
    if single is None:
        return
    for r in results:
        r.gains = relative_gains(r.main, single.main, higher_is_better)
        r.delta_m = delta_m(r.main, single.main, higher_is_better)
        if r.mode != "single":
            r.notes = sharing_warnings(r.mode, r.gains)

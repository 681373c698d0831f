"""Which tasks should share a trunk? Inter-task affinity by lookahead (Fifty et al., NeurIPS 2021,
"Efficiently Identifying Task Groupings for Multi-Task Learning"): during a short joint run, at every
measured step and for each task i, the shared parameters take a plain gradient step on task i's loss
alone, and every task j's loss on the same batch is compared before and after:
Z[i, j] = 1 - L_j(after i's step) / L_j(before), averaged over steps. Positive: i's updates help j."""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any, Sequence

import torch
from torch import Tensor, nn

from ..errors import TaskshareError
from ..tasks import Task
from ..train.config import TrainConfig
from ..train.device import resolve_device
from ..train.multitask import check_multitask_data, multitask_loader


@dataclass
class Affinity:
    tasks: list[str]
    matrix: list[list[float]]        # matrix[i][j]: the effect of task i's step on task j
    steps: int

    def tensor(self) -> Tensor:
        return torch.tensor(self.matrix)


def task_affinity(model: nn.Module, tasks: Sequence[Task], train: Any, config: TrainConfig | None = None,
                  lookahead_lr: float | None = None, every: int = 1) -> Affinity:
    """Train `model` (a HardSharing model) jointly for config.epochs with Adam on the summed losses,
    measuring the lookahead affinities every `every` steps. lookahead_lr: the plain-SGD step used for
    the lookahead (default config.lr * 10, large enough to see an effect in one step)."""
    config = config or TrainConfig(epochs=2)
    if not (hasattr(model, "trunk") and hasattr(model, "heads")):
        raise TaskshareError(f"task affinity needs a shared trunk and task heads (HardSharing), got {type(model).__name__}")
    tasks = list(tasks)
    if len(tasks) < 2:
        raise TaskshareError(f"task affinity needs at least 2 tasks, got {len(tasks)}")
    check_multitask_data(tasks, train, "training data")
    device = resolve_device(config.device)
    model.to(device).train()
    shared = [p for p in model.trunk.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=config.lr)
    step_size = lookahead_lr if lookahead_lr is not None else config.lr * 10
    T = len(tasks)
    total, counts, step = torch.zeros(T, T, dtype=torch.float64), torch.zeros(T, T, dtype=torch.float64), 0
    with torch.random.fork_rng():
        torch.manual_seed(config.seed)
        for _ in range(config.epochs):
            for x, ys in multitask_loader(train, config, True):
                x = x.to(device)
                ys = {k: v.to(device) for k, v in ys.items()}
                present = [i for i, t in enumerate(tasks) if t.name in ys and t.known(t.prepare_target(ys[t.name])).any()]
                out = model(x, tasks=[tasks[i].name for i in present])
                losses = {i: tasks[i].loss(out[tasks[i].name], ys[tasks[i].name]) for i in present}
                measure = step % every == 0 and len(present) > 1
                grads = {i: torch.autograd.grad(losses[i], shared, retain_graph=True, allow_unused=True)
                         for i in present} if measure else {}
                optimizer.zero_grad(set_to_none=True)
                sum(losses.values()).backward()          # the graph is done with before any lookahead edit
                if measure:
                    _lookahead(model, tasks, x, ys, losses, grads, shared, step_size, total, counts)
                optimizer.step()
                step += 1
    matrix = torch.where(counts > 0, total / counts.clamp_min(1), torch.zeros_like(total))
    return Affinity([t.name for t in tasks], matrix.tolist(), step)


def _lookahead(model, tasks, x, ys, losses, grads, shared, lr, total, counts) -> None:
    present = list(losses)
    before = torch.tensor([float(losses[j].detach()) for j in present], dtype=torch.float64)
    with torch.no_grad():
        saved = [p.detach().clone() for p in shared]
        for i in present:
            for p, g in zip(shared, grads[i]):
                if g is not None:
                    p.sub_(lr * g)
            out = model(x, tasks=[tasks[j].name for j in present])
            after = torch.tensor([float(tasks[j].loss(out[tasks[j].name], ys[tasks[j].name])) for j in present],
                                 dtype=torch.float64)
            for p, s in zip(shared, saved):
                p.copy_(s)
            effect = 1 - after / before.clamp_min(1e-12)
            for k, j in enumerate(present):
                total[i, j] += effect[k]
                counts[i, j] += 1


def _partitions(items: list[int], max_groups: int):
    if not items:
        yield []
        return
    first, rest = items[0], items[1:]
    for part in _partitions(rest, max_groups):
        for k in range(len(part)):
            yield part[:k] + [[first] + part[k]] + part[k + 1:]
        if len(part) < max_groups:
            yield [[first]] + part


def group_score(matrix: Tensor, groups: Sequence[Sequence[int]]) -> float:
    """Sum over tasks j of the mean affinity onto j from the other members of j's group (0 alone)."""
    score = 0.0
    for group in groups:
        for j in group:
            others = [i for i in group if i != j]
            if others:
                score += float(matrix[others, j].mean())
    return score


def propose_groups(affinity: Affinity, max_groups: int | None = None, relative: bool = True) -> list[list[str]]:
    """The partition of the tasks into at most `max_groups` groups (default: as many as tasks) that
    maximises group_score: tasks share a trunk where their lookahead effects on each other are
    positive. `relative` (default) first subtracts the mean off-diagonal affinity, so tasks are grouped
    where they help each other more than a task's step helps (or hurts) the others on average: in a
    small trunk every step costs the other tasks a little capacity, which would otherwise keep even
    closely related tasks apart. Exhaustive up to 10 tasks; beyond, greedy merging of the best pair."""
    M = affinity.tensor().double()
    T = len(affinity.tasks)
    if relative and T > 1:
        off = ~torch.eye(T, dtype=torch.bool)
        M = M - M[off].mean()
    max_groups = max_groups or T
    if T <= 10:
        best = max(_partitions(list(range(T)), max_groups), key=lambda p: group_score(M, p))
    else:
        best = [[i] for i in range(T)]
        while True:
            options = [(group_score(M, best[:a] + best[a + 1:b] + best[b + 1:] + [best[a] + best[b]]), a, b)
                       for a, b in itertools.combinations(range(len(best)), 2)]
            if not options:
                break
            value, a, b = max(options)
            if value <= group_score(M, best) and len(best) <= max_groups:
                break
            best = best[:a] + best[a + 1:b] + best[b + 1:] + [best[a] + best[b]]
    return sorted(([affinity.tasks[i] for i in sorted(g)] for g in best), key=lambda g: affinity.tasks.index(g[0]))


def affinity_svg(affinity: Affinity, cell: int = 44) -> str:
    """A heatmap of the affinity matrix (rows: the task that steps; columns: the task affected);
    green helps, red hurts, colour scaled to the largest magnitude."""
    import html
    names, M = affinity.tasks, affinity.tensor()
    T = len(names)
    scale = float(M.abs().max()) or 1.0
    left, top = 110, 110
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{left + T * cell + 20}" height="{top + T * cell + 40}" '
             f'font-family="sans-serif" font-size="11"><title>task affinity</title>']
    for i, name in enumerate(names):
        parts.append(f'<text x="{left - 6}" y="{top + i * cell + cell / 2 + 4}" text-anchor="end">{html.escape(name)}</text>')
        parts.append(f'<text transform="translate({left + i * cell + cell / 2 + 4},{top - 6}) rotate(-60)">'
                     f'{html.escape(name)}</text>')
        for j in range(T):
            v = float(M[i, j]) / scale
            r, g = (int(255 * (1 - max(v, 0))), 255) if v >= 0 else (255, int(255 * (1 + v)))
            b = int(255 * (1 - abs(v)))
            parts.append(f'<rect x="{left + j * cell}" y="{top + i * cell}" width="{cell}" height="{cell}" '
                         f'fill="rgb({r},{g},{b})" stroke="#fff"><title>{html.escape(names[i])} -> '
                         f'{html.escape(names[j])}: {float(M[i, j]):.4f}</title></rect>')
            parts.append(f'<text x="{left + j * cell + cell / 2}" y="{top + i * cell + cell / 2 + 4}" '
                         f'text-anchor="middle">{float(M[i, j]) * 100:.1f}</text>')
    parts.append(f'<text x="{left}" y="{top + T * cell + 24}">row: task stepped; column: task affected; '
                 f'values x100 (positive = helps)</text></svg>')
    return "".join(parts)


def save_affinity(run_dir, affinity: Affinity, groups: list[list[str]] | None = None) -> None:
    """affinity.json (and the heatmap as affinity.svg) in a run folder; `taskshare report` shows them."""
    from pathlib import Path

    from ..io import atomic_write_json, atomic_write_text
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    data = {"tasks": affinity.tasks, "matrix": affinity.matrix, "steps": affinity.steps, "groups": groups}
    atomic_write_json(run_dir / "affinity.json", data)
    atomic_write_text(run_dir / "affinity.svg", affinity_svg(affinity))

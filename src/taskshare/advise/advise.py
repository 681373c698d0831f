"""Advice before training: data facts, transferability scores of candidate trunks (and of layers
within the best one), and a recommended strategy with the rule that produced it."""
from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Mapping

import torch
from torch import Tensor, nn

from ..data import to_dataset
from ..data.arrays import ArrayDataset
from ..errors import TaskshareError
from ..models.surgery import layer_groups, reinitialize, split_head
from ..tasks import Task
from ..transfer.auto import Auto
from ..transfer.base import DataFacts, field_default
from .scores import h_score, leep, logme, nce


@dataclass
class CandidateScores:
    name: str
    logme: float = float("nan")
    h_score: float = float("nan")
    leep: float | None = None          # needs the source head (a full model given)
    nce: float | None = None
    input_ok: bool = True
    error: str | None = None
    layers: dict[str, float] = field(default_factory=dict)   # LogME at each layer group's output


@dataclass
class Advice:
    facts: dict[str, Any]
    candidates: list[CandidateScores]
    random_logme: float
    best: str | None
    strategy: str
    strategy_args: dict[str, Any]
    reason: str

    def to_dict(self) -> dict:
        return asdict(self)


def _features(module: nn.Module, x: Tensor, batch: int = 512) -> Tensor:
    was = module.training
    module.eval()
    device = next((p.device for p in module.parameters()), torch.device("cpu"))
    with torch.no_grad():
        out = torch.cat([module(x[i:i + batch].to(device)).reshape(len(x[i:i + batch]), -1).float().cpu()
                         for i in range(0, len(x), batch)])
    module.train(was)
    return out


def _layer_features(trunk: nn.Module, x: Tensor) -> dict[str, Tensor]:
    """Outputs of each layer group of the trunk (hooks on the group's last module)."""
    groups = layer_groups(trunk)
    captured: dict[str, list[Tensor]] = {g.name: [] for g in groups}
    handles = [g.modules[-1].register_forward_hook(
        lambda _m, _i, out, name=g.name: captured[name].append(out.detach().reshape(len(out), -1).float().cpu()))
        for g in groups if g.modules]
    try:
        _features(trunk, x)
    finally:
        for h in handles:
            h.remove()
    return {name: torch.cat(parts) for name, parts in captured.items() if parts}


def data_facts(task: Task, y: Tensor, source_size: int | None) -> DataFacts:
    if task.kind == "multiclass":
        counts = torch.bincount(y.long().reshape(-1), minlength=task.out_dim)
        present = counts[counts > 0]
        return DataFacts(len(y), task.out_dim, int(present.min()), None, source_size)
    return DataFacts(len(y), None, None, None, source_size)


def advise(target: Any, task: Task, candidates: Mapping[str, nn.Module], heads: Mapping[str, bool] | None = None,
           source_size: int | None = None, max_samples: int = 2000, seed: int = 0, layers: bool = True) -> Advice:
    """Score every candidate on the target data, rank them, and recommend a strategy.

    candidates: name -> a full source model (its last layer is taken as the source head: LEEP and
    NCE become available) or a trunk (pass heads={name: False}). The features of a randomly
    re-initialised copy of the best trunk are the reference: a candidate that does not beat them is
    unlikely to transfer. Only the target's inputs and labels are read; nothing is trained."""
    if task.kind != "multiclass":
        raise TaskshareError(f"advise scores classification targets; task {task.name!r} is {task.kind}")
    if not candidates:
        raise TaskshareError("advise needs at least one candidate model or trunk")
    x, y = _target_arrays(target, task)
    keep = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))[:max_samples]
    xs, ys = x[keep], y[keep].long()
    heads = heads or {}
    scored, trunks = [], {}
    for name, model in candidates.items():
        result, trunk = _score_candidate(name, model, heads.get(name, True), xs, ys)
        scored.append(result)
        if trunk is not None:
            trunks[name] = trunk
    usable = sorted((c for c in scored if c.input_ok), key=lambda c: c.logme, reverse=True)
    if not usable:
        raise TaskshareError(f"no candidate accepts the target inputs of shape {tuple(x.shape[1:])}: "
                             + "; ".join(f"{c.name}: {c.error}" for c in scored))
    best = usable[0]
    if layers:
        best.layers = {k: logme(v, ys) for k, v in _layer_features(trunks[best.name], xs).items()}
    random_score = logme(_features(reinitialize(copy.deepcopy(trunks[best.name]), seed), xs), ys)
    facts = data_facts(task, y, source_size)
    facts_dict = {"samples": len(y), "classes": task.out_dim, "labels_per_class": facts.labels_per_class,
                  "source_size": source_size, "input_shape": list(x.shape[1:]),
                  "inputs_fit": {c.name: c.input_ok for c in scored}}
    ranking = sorted(scored, key=lambda c: (c.input_ok, c.logme if c.logme == c.logme else -1e300), reverse=True)
    return Advice(facts_dict, ranking, random_score, best.name, *_recommend(facts, best, random_score))


def _target_arrays(target: Any, task: Task) -> tuple[Tensor, Tensor]:
    """Inputs and labels of the target as two tensors, the labels checked against the task."""
    data = to_dataset(target, "target data")
    x = data.x if isinstance(data, ArrayDataset) else torch.stack([torch.as_tensor(data[i][0]) for i in range(len(data))])
    y = data.y if isinstance(data, ArrayDataset) else torch.as_tensor([int(data[i][1]) for i in range(len(data))])
    task.check_labels(y, "target data")
    return x, y


def _score_candidate(name: str, model: nn.Module, has_head: bool, xs: Tensor,
                     ys: Tensor) -> tuple[CandidateScores, nn.Module | None]:
    """One candidate's scores and its trunk; a candidate that cannot read the inputs is kept, marked,
    with its error, and no trunk (the ranking shows which models did not fit)."""
    result = CandidateScores(name)
    try:
        if has_head:
            trunk, head = split_head(model, example=xs[:2])
            logits = head(_features(trunk, xs).to(next(head.parameters()).device)).detach().float().cpu()
            probs = torch.softmax(logits, 1)
            result.leep, result.nce = leep(probs, ys), nce(probs.argmax(1), ys)
        else:
            trunk = model
        feats = _features(trunk, xs)
    except (RuntimeError, ValueError) as err:
        result.input_ok, result.error = False, f"{type(err).__name__}: {str(err).splitlines()[0][:160]}"
        return result, None
    result.logme, result.h_score = logme(feats, ys), h_score(feats, ys)
    return result, trunk


def _recommend(facts: DataFacts, best: CandidateScores, random_score: float) -> tuple[str, dict[str, Any], str]:
    """Strategy name, its non-default arguments and the reason: scratch when the best trunk is no
    better than a random one; otherwise auto's rule, moved down to the best-scoring layer when a
    linear probe would read a worse layer than an inner one."""
    if best.logme <= random_score:
        return "scratch", {}, (f"the best candidate's LogME {best.logme:.3f} does not beat a random trunk's "
                               f"{random_score:.3f}: its features fit the target no better than random ones, "
                               f"so train from scratch")
    choice, why = Auto().resolve(facts)
    args = {f.name: getattr(choice, f.name) for f in fields(choice) if getattr(choice, f.name) != field_default(f)}
    reason = f"{best.name} ranks first (LogME {best.logme:.3f} against {random_score:.3f} for a random trunk); {why}"
    if not (best.layers and choice.name == "linear_probe"):
        return choice.name, args, reason
    order = list(best.layers)
    top = max(order, key=lambda k: best.layers[k])
    retrain = len(order) - 1 - order.index(top)
    if retrain == 0:
        return choice.name, args, reason
    return "last_k", {"k": retrain}, (reason + f"; but layer {top!r} scores higher (LogME {best.layers[top]:.3f}) "
                                      f"than the last one ({best.layers[order[-1]]:.3f}), so the {retrain} "
                                      f"group(s) above it are retrained")

"""How `auto` gathers its evidence: every candidate trains on the split as given; where that leaves the
choice against scratch open and its standard error large, or where a lead over scratch rests on too
few examples to trust one split, the candidates still in contention train again on the swapped roles
(validation to train, training examples held out), and the decision reads both rounds' per-example
results. The model kept is always the chosen candidate's first-round run."""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import ConcatDataset, Dataset, Subset

from ..data import ArrayDataset, Splits, labels_of
from ..tasks import Task
from ..train import resolve_device
from ..train.config import under
from ..train.loop import predict
from .auto import Auto
from .auto_scores import ExampleScore, example_score
from .base import DataFacts
from .evidence import Decision, Paired, contenders, decide, next_held_out, resolution


@dataclass
class _Gathered:
    """The evidence so far: per-example scores per candidate, the decision they give, and how it was got."""

    evidence: dict[str, list[float]]
    decision: Decision
    gap_se: float
    trainings: int
    rounds: int = 1
    recheck: str = ""      # why a first-round lead had to survive another round
    stopped: str = ""      # why a second round could not run


def choose(pretrained, task: Task, splits: Splits, auto: Auto, config, facts: DataFacts, augment, cache,
           labels_per_class, train_frozen_bn: bool, started: float):
    """`auto`'s model and result: every candidate trained and scored on validation, more rounds where
    the evidence asks for them (see the module's docstring), the decision and its evidence in the note."""
    from .run import new_cache, run_strategy
    if cache is True:
        cache = new_cache(pretrained, config)
    prior, reason = auto.resolve(facts)
    # The rule's choice may settle a tie the evidence cannot resolve only where it rests on sizes it
    # was measured on (labels per class, or a target as large as the source). Without class counts
    # (binary, multi-label, regression) its LP-FT is a guess, and a guess must not outrank scratch:
    # with a source that carried nothing, keeping it on a tie cost 10 points of R² (auto_kinds.py).
    informed = facts.labels_per_class is not None or auto.large(facts)
    tie_se = auto.max_se if informed else None
    candidates = {c.label(): c for c in auto.candidates(facts)}

    def train(name: str, split: Splits, round_: int):
        sub = under(config, auto.label()) if round_ == 0 else under(config, auto.label(), f"round{round_}")
        return run_strategy(pretrained, task, split, candidates[name], sub, facts.source_size, augment, cache,
                            labels_per_class if round_ == 0 else None, train_frozen_bn)

    runs = {name: train(name, splits, 0) for name in candidates}
    device = resolve_device(config.device)
    score = example_score(task, torch.cat([labels_of(splits.train), labels_of(splits.val)])
                          if task.kind == "regression" else None)

    def held_out(model, data) -> list[float]:
        return _scores(model, data, device, config, score, task)

    def judge(evidence: dict[str, list[float]]) -> Decision:
        return decide(evidence, prior.label(), "scratch", higher_is_better=score.higher_is_better, max_se=tie_se)

    evidence = {name: held_out(model, splits.val) for name, (model, _) in runs.items()}
    decision = judge(evidence)
    got = _Gathered(evidence, decision, _lead_se(evidence, decision.refused), trainings=len(runs))
    _more_rounds(got, splits, task, auto, config.seed, train, held_out, judge, score.higher_is_better)
    evidence_name = "" if score.name == "correct" and task.kind == "multiclass" else f" on the {score.describe()}"
    choice = got.decision.choice
    return _finish(runs[choice], auto, started,
                   f"{_how_gathered(got, task, auto)}; paired per example{evidence_name}: {got.decision.note}. "
                   f"The model kept is {choice}'s run on the split as given. The size rule alone would say "
                   f"{prior.label()} ({reason}" + ("" if informed else "; with no sizes to go by it breaks no tie "
                                                   "with scratch") + ")")


def _more_rounds(got: _Gathered, splits: Splits, task: Task, auto: Auto, seed: int, train, held_out, judge,
                 better: bool) -> None:
    """Rounds on other held-out examples while the decision is open with a large standard error, or a
    first-round lead rests on too few examples (up to `auto.rounds` in all); updates `got`."""
    plan = None
    while _another_round(got, auto):
        plan = plan or _plan_rounds(splits, task)
        pool, y, per_class, held, swappable = plan
        if not swappable:   # a round trains on the held-out examples: only where they hold every class
            got.stopped = "the validation split lacks a class the training split has"
            return
        out = next_held_out(y, per_class, held, seed=seed * 7919 + got.rounds)
        keep = np.setdiff1d(np.arange(len(y)), out)
        if task.kind != "multiclass" and (stopped := _untrainable(task, labels_of(pool), keep, len(splits.train))):
            got.stopped = stopped
            return
        if np.array_equal(out, np.arange(len(splits.train))):
            split = Splits(splits.val, splits.train)      # the swap itself: the feature cache knows both
        else:
            split = Splits(_subset(pool, keep), _subset(pool, out))
        for name in contenders(got.evidence, "scratch", better):
            model, _ = train(name, split, got.rounds)
            got.evidence[name] = got.evidence[name] + held_out(model, split.val)
            got.trainings += 1
        got.rounds += 1
        got.decision = judge(got.evidence)
        got.gap_se = _lead_se(got.evidence, got.decision.refused)


def _another_round(got: _Gathered, auto: Auto) -> bool:
    """Whether another round is due: rounds are left, and the decision is open with a standard error
    above max_se, or the lead that settled it is unconfirmed (`got.recheck` then says why)."""
    if got.rounds >= auto.rounds:
        return False
    if not got.decision.settled and got.gap_se > auto.max_se:
        return True
    got.recheck = _unconfirmed_lead(got.evidence, got.decision, auto.max_se)
    return bool(got.recheck)


def _how_gathered(got: _Gathered, task: Task, auto: Auto) -> str:
    """The note's first part: the rounds, the examples and trainings they took, and why a round was run
    or not."""
    per = "per class " if task.kind == "multiclass" else ""
    rounds, recheck, stopped = got.rounds, got.recheck, got.stopped
    return (f"{rounds} round(s) of held-out examples ({len(got.evidence['scratch'])} in all: the validation split"
            + (f", then as many {per}from the training split{_strata(task)}, roles swapped" if rounds > 1 else "")
            + f"), {got.trainings} trainings"
            + (f" (the second round because {recheck})" if recheck and rounds > 1 else "")
            + ("" if rounds > 1 or auto.rounds == 1 else f"; no second round: {stopped}" if stopped else
               "" if got.decision.settled else
               f"; no second round: the leads' standard error {got.gap_se:.3f} is within max_se {auto.max_se}"))


def _strata(task: Task) -> str:
    """How the later rounds' held-out examples are drawn, for the note (multiclass: per class, said there)."""
    return {"multiclass": "", "binary": " (stratified by the label)",
            "multilabel": " (stratified by each example's rarest positive label)",
            "regression": " (unstratified: regression has no classes)"}[task.kind]


def _plan_rounds(splits: Splits, task: Task):
    """The labelled pool (train then validation), each example's stratum (its class; -1: never held
    out), validation's count per stratum, how often each example was held out (validation once) and
    whether validation holds every training class (multiclass; the other kinds are checked per round)."""
    pool = pool_of(splits.train, splits.val)
    y = _strata_of(task, labels_of(pool))
    n = len(splits.train)
    val, train = y[n:], y[:n]
    per_class = {int(c): int((val == c).sum()) for c in np.unique(val[val >= 0])}
    held = np.zeros(len(y), dtype=np.int64)
    held[n:] = 1
    swappable = set(per_class) >= set(np.unique(train[train >= 0]).tolist()) if task.kind == "multiclass" else True
    return pool, y, per_class, held, swappable


def _strata_of(task: Task, targets: torch.Tensor) -> np.ndarray:
    """What the later rounds stratify by: the class (multiclass, binary); for multi-label targets the
    example's rarest positive label (L where it has none), so every label's few positives spread over
    the rounds as the validation split spread them; one stratum for regression. -1: no known label."""
    if task.kind == "multiclass":
        return targets.reshape(-1).numpy()
    y = task.prepare_target(targets)
    known = task.known(y)
    if task.kind == "regression":
        return np.where(known.all(-1).numpy(), 0, -1)
    positive = known & (y > 0.5)
    if task.kind == "binary":
        return np.where(known[:, 0].numpy(), positive[:, 0].numpy().astype(np.int64), -1)
    frequency = positive.sum(0).float()
    rarity = torch.where(positive, frequency, torch.tensor(float("inf")))
    rarest = torch.where(positive.any(-1), rarity.argmin(-1), torch.full((len(y),), y.shape[1]))
    return np.where(known.any(-1).numpy(), rarest.numpy(), -1)


def _untrainable(task: Task, targets: torch.Tensor, keep: np.ndarray, n_train: int) -> str:
    """Why the examples a round would train on cannot stand in for the training split, or "": a label
    (binary, or a multi-label column) that had positives and negatives in training must have both
    among them, else the round trains a head that never sees one side; regression needs 2 known rows."""
    y = task.prepare_target(targets)
    known = task.known(y)
    rows = torch.as_tensor(keep, dtype=torch.long)
    if task.kind == "regression":
        usable = int(known[rows].all(-1).sum())
        return "" if usable >= 2 else f"the swapped round would train on {usable} known target(s); it needs 2"
    pos, neg = known & (y > 0.5), known & (y <= 0.5)
    needed = pos[:n_train].any(0) & neg[:n_train].any(0)
    lacking = needed & ~(pos[rows].any(0) & neg[rows].any(0))
    if not lacking.any():
        return ""
    labels = ", ".join(str(int(j)) for j in torch.nonzero(lacking).reshape(-1)[:5])
    return (f"the examples it would train on lack a positive or a negative of label {labels}, which the "
            f"training split has")


def _finish(run, auto: Auto, started: float, note: str):
    model, result = run
    result.note = note
    result.strategy = f"{auto.label()} -> {result.strategy}"
    result.seconds = time.perf_counter() - started
    return model, result


def _scores(model, data: Dataset, device, config, score: ExampleScore, task: Task) -> list[float]:
    """The per-example score of the model on every labelled example of `data`, in order (multiclass
    accuracy: 1.0 where the model's class is the label, 0.0 where not)."""
    out, y = predict(model, data, device, config.eval_batch_size)
    return score(out, y, task)


def _unconfirmed_lead(evidence: dict[str, list[float]], decision, max_se: float) -> str:
    """Why a lead that displaced scratch after one round must survive another, or "" where it need not.
    A lead over n examples is resolved no better than 0.5 / sqrt(n) (see `resolution`); above max_se
    one lucky split can clear the bar: on 50 validation digits a lead of 0.06 ± 0.034 passed it and
    lost 5 points on test (transfer suite, mnist_to_sklearn k=5). The swapped round holds the training
    examples out, and the decision then reads both rounds."""
    if not decision.settled or decision.choice == "scratch":
        return ""
    lead, base = evidence[decision.choice], evidence["scratch"]
    n = min(len(lead), len(base))
    se = resolution(Paired.of(lead, base), n)
    return (f"{decision.choice}'s lead over scratch rested on {n} examples, standard error {se:.3f} above "
            f"max_se {max_se}" if se > max_se else "")


def _lead_se(evidence: dict[str, list[float]], refused: list[str]) -> float:
    """How well the evidence resolves a lead over scratch: the largest standard error of a transfer
    candidate's paired lead (never below what its number of examples allows, see `resolution`)."""
    base = evidence["scratch"]
    return max((resolution(Paired.of(v, base), min(len(v), len(base))) for n, v in evidence.items()
                if n != "scratch" and n not in refused),
               default=0.0)


def pool_of(train: Dataset, val: Dataset) -> Dataset:
    """Train and validation as one labelled set (arrays stay arrays: cheap subsets, fast loaders)."""
    if isinstance(train, ArrayDataset) and isinstance(val, ArrayDataset):
        out = ArrayDataset.__new__(ArrayDataset)
        out.x, out.y = torch.cat([train.x, val.x]), torch.cat([train.y, val.y])
        return out
    return ConcatDataset([train, val])


def _subset(dataset: Dataset, indices: np.ndarray) -> Dataset:
    return dataset.subset(indices) if isinstance(dataset, ArrayDataset) else Subset(dataset, indices.tolist())

"""Which trained model a run keeps (on your own data, for predict and export; in npz runs, as the best), and why.

When `auto` ran, its model is kept: auto is the procedure built to decide between the strategies (paired
per-example evidence against scratch, a second round where one split cannot resolve the lead), and
a bare comparison of validation scores cannot do better than it. Without auto, the best validation
score is kept; on a tie, the strategy listed first in `transfer.strategies` wins and scratch comes
last: a tie is no evidence against the pretrained trunk, and the user's order is the only preference
stated. Ties are common on the small validation splits of tables: on breast cancer with all labels
every strategy scored 95.5% on 22 validation rows, and scratch, kept because it ran first, scored
94.6% on test where auto's choice (lp_ft) scored 98.2%. The rule is no promise on test: on wine, 7 of
8 tied at 100% and the first listed scored 94.4% (as scratch did), lp_ft 97.2%, finetune 86.1%.

The rule reads plain candidates (label, validation score, auto or not, scratch or not), so the npz
runs' saver, which sees results only and holds one model, asks it too (`replaces`). A NaN validation
score ranks below every number: compared as it is, a NaN saved first was never replaced.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

from torch import nn

from ..errors import TaskshareError
from ..transfer.auto import Auto
from ..transfer.base import Strategy


@dataclass(frozen=True)
class Candidate:
    """What the rule reads of one run: its label, its validation score, whether auto made it, whether
    it started from random weights (scratch). Plain, so a caller holding only results can ask too."""

    label: str
    val_score: float
    auto: bool = False
    scratch: bool = False


def ranked(candidates: Sequence[Candidate], higher_is_better: bool = True) -> list[int]:
    """The rule, on candidates in the configured order: the indices of those that may be kept, the kept
    one first. Auto's alone when it ran; else those tied at the best validation score, in the configured
    order with scratch last. A NaN score ranks below every other (NaN compares false both ways, so
    `max` would keep or drop it by its position)."""
    autos = [i for i, c in enumerate(candidates) if c.auto]
    if autos or not candidates:
        return autos[:1]
    sign = 1 if higher_is_better else -1
    # (is a number, signed score): every NaN sorts below every number and ties with the other NaNs
    keys = [(False, 0.0) if math.isnan(c.val_score) else (True, sign * c.val_score) for c in candidates]
    best = max(keys)
    tied = [i for i, k in enumerate(keys)
            if k[0] == best[0] and math.isclose(k[1], best[1], rel_tol=0, abs_tol=1e-9)]
    return sorted(tied, key=lambda i: candidates[i].scratch)     # stable: the configured order stands


def replaces(candidate: Candidate, current: Candidate | None, higher_is_better: bool = True) -> bool:
    """Whether `candidate`, run after `current`, is kept instead of it: the rule over the two, for a
    caller that holds one model at a time."""
    return current is None or ranked([current, candidate], higher_is_better)[0] == 1


@dataclass
class Trained:
    """One strategy's run at the size and seed a model is kept from."""

    strategy: Strategy
    model: nn.Module
    result: object          # a TransferResult: strategy (its label), val_score, test


def _has_adapters(model: nn.Module) -> bool:
    # LoRA adapters are saved by the strategy's own means; the deployable file holds plain weights
    return any("lora_" in k for k in model.state_dict())


def _candidate(t: Trained) -> Candidate:
    return Candidate(t.result.strategy, t.result.val_score, isinstance(t.strategy, Auto), t.strategy.reinit)


def _ranked(trained: list[Trained], higher_is_better: bool) -> list[Trained]:
    usable = [t for t in trained if not _has_adapters(t.model)]
    return [usable[i] for i in ranked([_candidate(t) for t in usable], higher_is_better)]


def contenders(trained: list[Trained], higher_is_better: bool = True) -> list[Trained]:
    """The runs that may still be kept, in the configured order: auto's when it ran, else those tied at the
    best validation score. Pruning to these as runs finish holds few models in memory at once."""
    kept = _ranked(trained, higher_is_better)
    return [t for t in trained if any(t is k for k in kept)]


def choose_kept(trained: list[Trained], higher_is_better: bool = True) -> tuple[Trained, str]:
    """The run to keep and a sentence saying why (printed and written to run.json)."""
    tied = _ranked(trained, higher_is_better)
    if not tied:
        raise TaskshareError("no strategy left plain weights to keep (LoRA keeps adapters only); add another "
                             "strategy to transfer.strategies, e.g. linear_probe")
    kept = tied[0]
    if isinstance(kept.strategy, Auto):
        return kept, ("auto's choice, made on paired validation evidence against scratch (its note in "
                      "results.json gives the evidence)")
    why = f"best validation score ({kept.result.val_score:.3f})"
    if len(tied) > 1:
        others = ", ".join(t.result.strategy for t in tied[1:])
        why += (f", tied with {others}; a tie goes to the strategy listed first in transfer.strategies, "
                f"scratch last")
    return kept, why

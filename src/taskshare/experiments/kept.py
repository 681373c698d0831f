"""Which trained model a run on your own data keeps for predict and export, and why.

When `auto` ran, its model is kept: auto is the procedure built to decide between the strategies (paired
per-example evidence against scratch, a second round where one split cannot resolve the lead), and
a bare comparison of validation scores cannot do better than it. Without auto, the best validation
score is kept; on a tie, the strategy listed first in `transfer.strategies` wins and scratch comes
last: a tie is no evidence against the pretrained trunk, and the user's order is the only preference
stated. Ties are common on the small validation splits of tables: on breast cancer with all labels
every strategy scored 95.5% on 22 validation rows, and scratch, kept because it ran first, scored
94.6% on test where auto's choice (lp_ft) scored 98.2%. The rule is no promise on test: on wine, 7 of
8 tied at 100% and the first listed scored 94.4% (as scratch did), lp_ft 97.2%, finetune 86.1%.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from torch import nn

from ..errors import TaskshareError
from ..transfer.auto import Auto
from ..transfer.base import Strategy


@dataclass
class Trained:
    """One strategy's run at the size and seed a model is kept from."""

    strategy: Strategy
    model: nn.Module
    result: object          # a TransferResult: strategy (its label), val_score, test


def _has_adapters(model: nn.Module) -> bool:
    # LoRA adapters are saved by the strategy's own means; the deployable file holds plain weights
    return any("lora_" in k for k in model.state_dict())


def contenders(trained: list[Trained], higher_is_better: bool = True) -> list[Trained]:
    """The runs that may still be kept, in the configured order: auto's when it ran, else those tied at the
    best validation score. Pruning to these as runs finish holds few models in memory at once."""
    usable = [t for t in trained if not _has_adapters(t.model)]
    auto = [t for t in usable if isinstance(t.strategy, Auto)]
    if auto or not usable:
        return auto[:1]
    sign = 1 if higher_is_better else -1
    best = max(sign * t.result.val_score for t in usable)
    return [t for t in usable if math.isclose(sign * t.result.val_score, best, rel_tol=0, abs_tol=1e-9)]


def choose_kept(trained: list[Trained], higher_is_better: bool = True) -> tuple[Trained, str]:
    """The run to keep and a sentence saying why (printed and written to run.json)."""
    tied = contenders(trained, higher_is_better)
    if not tied:
        raise TaskshareError("no strategy left plain weights to keep (LoRA keeps adapters only); add another "
                             "strategy to transfer.strategies, e.g. linear_probe")
    if isinstance(tied[0].strategy, Auto):
        return tied[0], ("auto's choice, made on paired validation evidence against scratch (its note in "
                         "results.json gives the evidence)")
    # sorted() is stable: the configured order stands, scratch (a reinit strategy) moved to the end
    tied = sorted(tied, key=lambda t: t.strategy.reinit)
    kept = tied[0]
    why = f"best validation score ({kept.result.val_score:.3f})"
    if len(tied) > 1:
        others = ", ".join(t.result.strategy for t in tied[1:])
        why += (f", tied with {others}; a tie goes to the strategy listed first in transfer.strategies, "
                f"scratch last")
    return kept, why

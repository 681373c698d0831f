"""`taskshare advise CONFIG` for a transfer config with your own data: the trunk `taskshare run` would
start from (a hub model's, or a built-in pretrained on the configured source) scored on the target's
labelled examples at every number of labels per class, with a recommended strategy, nothing else
trained. Multi-task configs have no single target to score a trunk against and are refused."""
from __future__ import annotations

from pathlib import Path

from ..advise import advise
from ..errors import TaskshareError
from .advise import add_advice_row, advice_folder, advice_table, write_advice
from .own import OwnExperiment, encoded_with, few_shot_splits, load_own, model_size, pretrain_builtin, read_target
from .runs import guard, rebuild_report


def run_own_advise_command(args, raw: dict, console) -> int:
    config = load_own(raw)
    if config.mode != "transfer":
        raise TaskshareError(f"advise scores a pretrained trunk on one transfer target; this config has mode: "
                             f"{config.mode}. Give it a transfer config (a 'target' source and a model), or run "
                             f"this one with 'taskshare run' (one model per task against sharing is its baseline)")
    unsupported = [flag for flag, on in (("--pretrained", args.pretrained), ("--confirm", args.confirm),
                                         ("--quick", args.quick)) if on]
    if unsupported:
        raise TaskshareError(f"{', '.join(unsupported)}: for the demo's and npz configs only; with your own data "
                             f"the model comes from the config's 'model', and 'taskshare run' with strategy auto "
                             f"does the confirming sweep")
    out = advice_folder(args.out, config.output)
    guard(args, out)
    run_own_advise(config, out, console)
    rebuild_report(out)
    return 0


def run_own_advise(config: OwnExperiment, out: Path, console) -> list[dict]:
    """The advice table and advice.json for an own-data transfer config; returns the rows."""
    from .own_transfer import _target
    backbone, size = model_size(config)
    target = read_target(config, size)   # checked before the source is pretrained, as `taskshare run` does
    if backbone is None:      # a built-in: pretrained on the source first, as `taskshare run` does
        model, source_info, _ = pretrain_builtin(config, size, console, target.data)
        if source_info["kind"] == "table":   # the target encoded with the source's scaling and categories
            target = encoded_with(target, source_info["encoding"])
        name, has_head = config.model.name, True
    else:                     # a hub model's trunk: its source head is gone, so no LEEP or NCE
        model, name, has_head = backbone.trunk, config.model.label, False
    data, task, train_ds, test_ds = _target(config, target, getattr(backbone, "tokenizer", None), {}, console)
    table, results = advice_table(), []
    for shot in config.transfer.shots:
        splits = few_shot_splits(train_ds, test_ds, shot, 0, config.transfer.val_per_class)
        # layer by layer only for built-ins: advise groups a trunk by its module tree, a hub model's run by
        # the backbone's own stages, so a last_k(k) read from the first would mean other layers in the run
        advice = advise(splits.train, task, {name: model}, heads={name: has_head}, layers=has_head)
        spec = {"name": advice.strategy, **advice.strategy_args} if advice.strategy_args else advice.strategy
        results.append({"labels_per_class": shot, "advice": advice.to_dict(), "strategy": spec})
        add_advice_row(table, shot, advice)
    write_advice(out, console, table, results)
    return results

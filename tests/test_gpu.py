"""CUDA and mixed precision. Skipped without a GPU; run on one with `pytest -m gpu`."""
import pytest
import torch
from torch import nn

from taskshare import Task, TrainConfig, TrunkHead, fit
from taskshare.data import few_shot, split
from taskshare.models import CNN1d
from taskshare.train import load_into, save
from taskshare.train.device import amp_dtype, resolve_device
from taskshare.transfer import run_strategy

from .conftest import blobs

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]


def test_auto_device_is_cuda_and_auto_precision_is_half():
    device = resolve_device("auto")
    assert device.type == "cuda"
    assert amp_dtype("auto", device) in (torch.bfloat16, torch.float16)
    assert amp_dtype("auto", torch.device("cpu")) is None


@pytest.mark.parametrize("amp", ["bf16", "fp16", "off"])
def test_fit_on_cuda_learns_in_each_precision(amp):
    x, y = blobs(n_per_class=60, dim=40)
    s = split((x, y), 0.2, seed=0)
    torch.manual_seed(0)
    model = CNN1d(40, 3, channels=(8, 8))
    task = Task("t", "multiclass", num_classes=3)
    history = fit(model, task, s.train, s.val, TrainConfig(epochs=8, lr=3e-3, amp=amp, progress=False))
    assert next(model.parameters()).device.type == "cuda"
    assert history.best_score > 0.9
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert all(p.dtype == torch.float32 for p in model.parameters())  # master weights stay fp32


def test_cached_linear_probe_on_cuda_matches_uncached():
    x, y = blobs(n_per_class=40, dim=8)
    splits = few_shot((x, y), 20, seed=0, test=(x, y))
    torch.manual_seed(0)
    pre = TrunkHead(nn.Sequential(nn.Linear(8, 32), nn.BatchNorm1d(32), nn.ReLU()), nn.Linear(32, 3))
    task, cfg = Task("t", "multiclass", num_classes=3), TrainConfig(epochs=4, batch_size=8, amp="off", progress=False)
    a_model, a = run_strategy(pre, task, splits, "linear_probe", cfg, cache=True)
    b_model, b = run_strategy(pre, task, splits, "linear_probe", cfg, cache=False)
    assert a.cached and not b.cached
    for p, q in zip(a_model.head.parameters(), b_model.head.parameters()):
        assert p.device.type == "cuda"
        assert torch.allclose(p, q, atol=1e-5)


def test_checkpoint_from_cuda_loads_on_cpu(tmp_path):
    model = CNN1d(40, 5, channels=(4,)).cuda()
    path = save(tmp_path / "m", model)
    cpu = load_into(CNN1d(40, 5, channels=(4,)), path)
    assert torch.equal(cpu.fc.weight, model.fc.weight.cpu())


@pytest.mark.parametrize("mode", ["hard", "soft", "cross_stitch"])
def test_multitask_training_on_cuda(mode):
    from taskshare.data.multitask import MultiTaskDataset
    from taskshare.multitask import build_sharing
    from taskshare.train.multitask import evaluate_multitask, fit_multitask
    x, y = blobs(n_per_class=60, dim=8)
    flag = (y == 0).astype("float32")
    flag[::4] = float("nan")  # unknown labels travel to the GPU too
    data = MultiTaskDataset(x, {"cls": y, "flag": flag})
    tasks = [Task("cls", "multiclass", num_classes=3), Task("flag", "binary")]
    model = build_sharing(mode, lambda: nn.Sequential(nn.Sequential(nn.Linear(8, 32), nn.ReLU())), tasks,
                          torch.as_tensor(x[:2]))
    fit_multitask(model, tasks, data, data, TrainConfig(epochs=6, lr=1e-2, progress=False))
    assert next(model.parameters()).device.type == "cuda"
    m = evaluate_multitask(model, tasks, data)
    assert m["cls"]["accuracy"] > 0.9 and m["flag"]["auroc"] > 0.9

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
    from taskshare.models import build_sharing
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


@pytest.mark.parametrize("representation", [False, True])
def test_fp16_gradient_balancing_on_cuda_sees_unscaled_gramians_and_learns(representation):
    from taskshare import HardSharing, MultiTaskDataset, fit_multitask
    from taskshare.balancing import UPGrad
    from taskshare.train.multitask import evaluate_multitask

    class First(UPGrad):
        def weights(self, gramian):
            self.first = getattr(self, "first", gramian.float().cpu())
            return super().weights(gramian)

    g = torch.Generator().manual_seed(0)
    x = torch.randn(256, 6, generator=g)
    data = MultiTaskDataset(x, {"a": (x[:, 0] > 0).long(), "b": x[:, 1] * 2})
    tasks = [Task("a", num_classes=2), Task("b", "regression")]
    seen = {}
    for amp in ("off", "fp16"):
        torch.manual_seed(0)
        model = HardSharing(nn.Sequential(nn.Linear(6, 32), nn.ReLU()), tasks, in_features=32)
        method = First()
        fit_multitask(model, tasks, data, None, TrainConfig(epochs=10, batch_size=64, lr=1e-2, progress=False,
                                                            device="cuda", amp=amp),
                      balancer=method, representation=representation)
        seen[amp] = method.first
        assert next(model.parameters()).device.type == "cuda"
        assert all(torch.isfinite(p).all() for p in model.parameters())
        assert evaluate_multitask(model, tasks, data)["a"]["accuracy"] > 0.9
    assert torch.allclose(seen["fp16"], seen["off"], rtol=0.05, atol=1e-4)


def test_fp16_run_on_cuda_resumes_to_the_same_parameters(tmp_path):
    """Model, optimizer, schedule, grad scaler and FAMO state saved on the GPU and restored."""
    from taskshare import HardSharing, MultiTaskDataset, fit_multitask
    from taskshare.balancing import FAMO
    g = torch.Generator().manual_seed(0)
    x = torch.randn(96, 6, generator=g)
    data = MultiTaskDataset(x, {"a": (x[:, 0] > 0).long(), "b": x[:, 1] * 3})
    tasks = [Task("a", num_classes=2), Task("b", "regression")]

    def train(epochs, ckpt=None, resume=False):
        torch.manual_seed(0)
        model = HardSharing(nn.Sequential(nn.Linear(6, 8), nn.ReLU()), tasks, in_features=8)
        method = FAMO(num_tasks=2)
        cfg = TrainConfig(epochs=epochs, batch_size=16, min_steps=0, progress=False, device="cuda", amp="fp16",
                          schedule="constant", warmup=0.0, checkpoint_dir=ckpt, checkpoint_every=4, resume=resume)
        fit_multitask(model, tasks, data, None, cfg, balancer=method)
        return model, method

    full, famo = train(4)
    train(2, tmp_path)
    resumed, famo_resumed = train(4, tmp_path, resume=True)
    for p, q in zip(full.parameters(), resumed.parameters()):
        assert torch.allclose(p, q, atol=1e-6), (p - q).abs().max()
    assert torch.allclose(famo.logits, famo_resumed.logits, atol=1e-6)


@pytest.mark.parametrize("case", ["plain", "famo", "upgrad", "mgda-rep", "upgrad@fp16"])
def test_two_processes_on_one_gpu_match_one(tmp_path, case):
    """gloo between two processes whose tensors live on the one GPU (NCCL needs a GPU per process)."""
    from tests.train.ddp_worker import spawn, train, worker
    case = case if "@" in case else case + "@cuda"
    single = train(case)
    spawn(worker, (2, str(tmp_path / "store"), case, str(tmp_path)))
    tol = 5e-3 if case.endswith("fp16") else 1e-4
    for rank in (0, 1):
        replica = torch.load(tmp_path / f"rank{rank}.pt", weights_only=True)
        for a, b in zip(single, replica):
            assert torch.allclose(a, b, atol=tol), (case, rank, (a - b).abs().max())

"""One process of the distributed-equivalence tests (started by torch.multiprocessing.spawn)."""
import torch
import torch.distributed as dist
from torch import nn

from taskshare import HardSharing, MultiTaskDataset, Task, TrainConfig, fit, fit_multitask

CFG = dict(epochs=2, batch_size=32, min_steps=0, progress=False, device="cpu", seed=0)


def data():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(128, 6, generator=g)
    return x, (x[:, 0] > 0).long(), x[:, 1] * 2 - x[:, 2]


def train(case: str) -> list[torch.Tensor]:
    torch.manual_seed(0)
    x, ya, yb = data()
    if case == "plain":
        model = nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 2))
        fit(model, Task("a", num_classes=2), (x, ya), None, TrainConfig(**CFG))
    else:
        tasks = [Task("a", num_classes=2), Task("b", "regression")]
        model = HardSharing(nn.Sequential(nn.Linear(6, 16), nn.Tanh()), tasks, in_features=16)
        representation = case.endswith("-rep")
        fit_multitask(model, tasks, MultiTaskDataset(x, {"a": ya, "b": yb}), None, TrainConfig(**CFG),
                      balancer=case.removesuffix("-rep"), representation=representation)
    return [p.detach().clone() for p in model.parameters()]


def worker(rank: int, world: int, store: str, case: str, out: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world)
    try:
        torch.save(train(case), f"{out}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()

import pytest
import torch
from torch import nn

from taskshare import Task
from taskshare.adapt import build_method
from taskshare.adapt.safety import Progress
from taskshare.adapt.train import adaptation_objective
from taskshare.models.trunk_head import TrunkHead


@pytest.fixture(autouse=True)
def one_thread():
    """Small models on a shared CPU: one thread is faster than several contending for the cores."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def late_objective(method: str, weight: float, pull_limit, n: int, dim: int, classes: int, shift: float):
    """A small trunk+head on seeded source/target blobs (the target shifted by `shift`), and the
    adaptation objective of `method` late in training, where the ramp is near 1 and a bound bites:
    returns (model, objective's (loss, parts))."""
    g = torch.Generator().manual_seed(0)
    xs, xt = torch.randn(n, dim, generator=g), torch.randn(n, dim, generator=g) + shift
    y = torch.randint(0, classes, (n,), generator=g)
    torch.manual_seed(0)
    model = TrunkHead(nn.Sequential(nn.Linear(dim, 8), nn.ReLU()), nn.Linear(8, classes))
    progress = Progress(10)
    progress.step = 9
    objective = adaptation_objective(Task("c", num_classes=classes), build_method(method), weight, progress, pull_limit)
    return model, progress, objective(model, (xs, xt), y)

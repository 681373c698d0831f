"""A small deterministic adaptation run for the kill-and-resume test (run as a subprocess).

usage: python adapt_resume_script.py OUT_DIR CHECKPOINT_DIR|- SLOW_SECONDS RESUME(0/1) METHOD
Writes OUT_DIR/final.pt (model and method state) and OUT_DIR/steps.txt (steps this process trained)."""
import sys
import time
from pathlib import Path

import torch
from torch import nn

from taskshare import Task, TrainConfig
from taskshare.adapt import build_method, fit_adaptation
from taskshare.models.trunk_head import TrunkHead

out, ckpt, slow, resume, name = Path(sys.argv[1]), sys.argv[2], float(sys.argv[3]), sys.argv[4] == "1", sys.argv[5]
torch.use_deterministic_algorithms(True)
torch.set_num_threads(1)
g = torch.Generator().manual_seed(0)
x = torch.randn(256, 6, generator=g)
y = (x[:, 0] + x[:, 1] > 0).long()
x_target = torch.randn(200, 6, generator=g) * 1.5 + 0.5
torch.manual_seed(0)
model = TrunkHead(nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Dropout(0.2), nn.Linear(16, 8), nn.ReLU()), nn.Linear(8, 2))
method = build_method(name)
calls = []
plain = method.loss


def slowed(*args, **kwargs):
    calls.append(1)            # counts the steps this process really trains
    time.sleep(slow)           # slows the steps down so a test can kill the run mid-epoch
    return plain(*args, **kwargs)


method.loss = slowed
config = TrainConfig(epochs=4, batch_size=32, min_steps=0, progress=False, device="cpu", seed=0,
                     checkpoint_dir=None if ckpt == "-" else ckpt, checkpoint_every=3, resume=resume)
fit_adaptation(model, Task("c", num_classes=2), (x, y), x_target, None, config, method=method)  # last epoch kept
torch.save({"model": model.state_dict(), "method": method.state_dict()}, out / "final.pt")
(out / "steps.txt").write_text(str(len(calls)))

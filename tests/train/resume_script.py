"""A small deterministic training run for the kill-and-resume tests (run as a subprocess).

usage: python resume_script.py OUT_DIR CHECKPOINT_DIR|- SLOW_SECONDS RESUME(0/1)
Writes OUT_DIR/final.safetensors with the trained parameters."""
import sys
import time
from pathlib import Path

import torch
from torch import nn

from taskshare import Task, TrainConfig, fit
from taskshare.train.checkpoint import save

out, ckpt, slow, resume = Path(sys.argv[1]), sys.argv[2], float(sys.argv[3]), sys.argv[4] == "1"
torch.use_deterministic_algorithms(True)
torch.set_num_threads(1)
g = torch.Generator().manual_seed(0)
x = torch.randn(256, 10, generator=g)
y = (x[:, 0] + x[:, 1] > 0).long()
torch.manual_seed(0)
model = nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Dropout(0.2), nn.Linear(32, 2))
config = TrainConfig(epochs=4, batch_size=32, min_steps=0, progress=False, device="cpu", seed=0,
                     checkpoint_dir=None if ckpt == "-" else ckpt, checkpoint_every=3, resume=resume)


calls = []


def augment(batch):
    calls.append(1)           # counts the steps this process really trains
    time.sleep(slow)          # slows the steps down so a test can kill the run mid-epoch
    return batch


fit(model, Task("c", num_classes=2), (x, y), (x[:64], y[:64]), config, augment=augment)
save(out / "final.safetensors", model)
(out / "steps.txt").write_text(str(len(calls)))

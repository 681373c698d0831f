"""Peak memory of hard sharing with T tasks against T separate models (trunk Linear(784,512)-ReLU-
Linear(512,512)-ReLU, a linear head per task, batch 256, AdamW, 3 training steps), in a fresh process
per cell: MiB that building the model and optimizer and training add to the peak resident set
(Linux: the peak is reset through /proc/self/clear_refs once the data exist and one small warm-up
step has paid the first-use allocations). The per-method Jacobian
memory of gradient balancing is in the `balancing_speed.py --part memory` table.

    python benchmarks/memory.py
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, publish  # noqa: E402

CODE = r"""
import re, torch, torch.nn.functional as F
from torch import nn
from taskshare import HardSharing, Task
torch.set_num_threads(1)
T, separate = {T}, {separate}
x = torch.randn(256, 784)
ys = [torch.randint(0, 10, (256,)) for _ in range(T)]
warm = nn.Linear(784, 16)                   # first-use allocations (kernels, thread pools) happen here
w_opt = torch.optim.AdamW(warm.parameters()); warm(x).sum().backward(); w_opt.step(); del warm, w_opt
status = lambda key: int(re.search(key + r':\s+(\d+)', open('/proc/self/status').read()).group(1))
open('/proc/self/clear_refs', 'w').write('5'); before = status('VmRSS')
trunk = lambda: nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU())
if separate:
    models = [HardSharing(trunk(), [Task(f"t{{i}}", num_classes=10)], in_features=512) for i in range(T)]
    params = [p for m in models for p in m.parameters()]
    forward = lambda: [m(x)[f"t{{i}}"] for i, m in enumerate(models)]
else:
    model = HardSharing(trunk(), [Task(f"t{{i}}", num_classes=10) for i in range(T)], in_features=512)
    params = list(model.parameters())
    forward = lambda: [model(x)[f"t{{i}}"] for i in range(T)]
opt = torch.optim.AdamW(params, lr=1e-3)
for _ in range(3):
    opt.zero_grad(set_to_none=True)
    sum(F.cross_entropy(o, y) for o, y in zip(forward(), ys)).backward()
    opt.step()
print(status('VmHWM') - before, sum(p.numel() for p in params))
"""


def cell(T: int, separate: bool) -> tuple[float, int]:
    out = subprocess.run([sys.executable, "-c", CODE.format(T=T, separate=separate)], capture_output=True, text=True,
                         check=True).stdout.split()
    return int(out[0]) / 1024, int(out[1])


def main() -> None:
    import torch
    torch.set_num_threads(1)
    lines = [f"Measured on {machine()}; MiB added to the peak resident set by the model, AdamW and 3 steps.", "",
             "| tasks | hard sharing: parameters | hard sharing: peak MiB | T separate models: parameters | "
             "T separate models: peak MiB |", "|---|---|---|---|---|"]
    for T in (2, 10):
        (hard, hard_p), (sep, sep_p) = cell(T, False), cell(T, True)
        lines.append(f"| {T} | {hard_p:,} | {hard:.1f} | {sep_p:,} | {sep:.1f} |")
        print(lines[-1], flush=True)
    publish("memory_sharing", lines)


if __name__ == "__main__":
    main()

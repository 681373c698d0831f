"""`taskshare export RUN_DIR --format onnx|torchscript`: the run's model with its preprocessing
inside (resize to the trained size, normalisation) and a softmax per task, written next to the
run, then run once on a sample and compared with PyTorch: outputs must agree within 1e-4.

Inputs of the exported model: images as float (batch, C, H, W) in [0, 1] at the run's image size
(the size run.json records); table rows as the encoded feature vector; texts as token ids
(tokenizing stays outside: the tokenizer is no tensor program)."""
from __future__ import annotations

import logging
import warnings
from pathlib import Path

import torch
from torch import Tensor, nn

from ..errors import TaskshareError
from .load import LoadedRun
from .models import example_input

log = logging.getLogger("taskshare")
FORMATS = ("onnx", "torchscript")
TOLERANCE = 1e-4


class Probabilities(nn.Module):
    """model(x) -> one probability tensor per task, in the run's task order (a tuple: ONNX and
    TorchScript both want fixed outputs, not a dict)."""

    def __init__(self, model: nn.Module, tasks: list[str], values: tuple[str, ...] = ()):
        super().__init__()
        self.model, self.tasks, self.values = model, list(tasks), set(values)   # values: regression tasks, as output

    def forward(self, x: Tensor) -> tuple[Tensor, ...]:
        out = self.model(x)
        if isinstance(out, dict):
            return tuple(out[t] if t in self.values else torch.softmax(out[t], dim=-1) for t in self.tasks)
        return (torch.softmax(out, dim=-1),)


def sample_input(run: LoadedRun, rows: int = 4) -> Tensor:
    """A deterministic sample shaped like the model's inputs (random pixels or token ids)."""
    g = torch.Generator().manual_seed(0)
    shape = example_input(run.input, rows)
    if shape.dtype == torch.long:
        vocab = getattr(getattr(run.tokenizer, "hf", None), "vocab_size", 1000) or 1000
        ids = torch.randint(1, vocab, tuple(shape.shape), generator=g)
        ids[:, shape.shape[1] // 2:] = 0   # padding, as short texts have
        return ids
    return torch.rand(tuple(shape.shape), generator=g)


def export(run: LoadedRun, fmt: str, out: str | Path | None = None) -> tuple[Path, float]:
    """Write the exported model; returns its path and the largest difference from PyTorch's outputs
    on the sample (raises when above 1e-4)."""
    if fmt not in FORMATS:
        raise TaskshareError(f"export format {fmt!r}; expected one of {FORMATS}")
    wrapped = Probabilities(run.model.cpu().eval(), [t.name for t in run.tasks],
                            tuple(t.name for t in run.tasks if t.kind == "regression")).eval()
    x = sample_input(run)
    with torch.no_grad():
        expected = [o.numpy() for o in wrapped(x)]
    path = Path(out) if out else run.run_dir / ("model.onnx" if fmt == "onnx" else "model.torchscript.pt")
    path.parent.mkdir(parents=True, exist_ok=True)
    outputs = [f"{'value' if t.kind == 'regression' else 'prob'}_{t.name}" for t in run.tasks]
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")    # tracer warnings about shape checks fixed at the traced size
        if fmt == "onnx":
            try:
                torch.onnx.export(wrapped, (x,), str(path), input_names=["inputs"], output_names=outputs,
                                  dynamic_axes={"inputs": {0: "batch"}, **{o: {0: "batch"} for o in outputs}},
                                  dynamo=False, opset_version=17)
            except ImportError as exc:
                raise TaskshareError(f"ONNX export needs onnx: pip install 'taskshare[export]' ({exc})") from None
            except torch.onnx.errors.UnsupportedOperatorError as exc:
                raise TaskshareError(f"ONNX cannot express this model ({exc}); a shrinking antialiased resize is the "
                                     f"usual cause: train with the source's image_size equal to the model's, or "
                                     f"export --format torchscript") from None
            got = _run_onnx(path, x)
        else:
            traced = torch.jit.trace(wrapped, (x,), check_trace=False)
            traced.save(str(path))
            got = [o.numpy() for o in torch.jit.load(str(path))(x)]
    import numpy as np
    worst = max(float(np.abs(a - b).max()) for a, b in zip(expected, got))
    if worst > TOLERANCE:
        raise TaskshareError(f"{path}: exported outputs differ from PyTorch's by {worst:.2e} on the sample; "
                             f"expected at most {TOLERANCE:g}")
    return path, worst


def _run_onnx(path: Path, x: Tensor):
    try:
        import onnxruntime as ort
    except ImportError as exc:
        raise TaskshareError("checking an ONNX export needs onnxruntime: pip install 'taskshare[export]'") from exc
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x.numpy()})

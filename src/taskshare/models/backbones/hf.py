"""Hugging Face transformers encoders (AutoModel, sentence-transformers folders): pooled output as
features, one layer group per transformer block. Text is tokenized once, up front, into a tensor of
token ids, so loaders, the feature cache and every strategy work unchanged."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch
from torch import Tensor, nn

from ...errors import TaskshareError
from .base import Backbone, module_groups, require

POOLING = ("mean", "cls")


class Tokenizer:
    """Strings -> (n, max_length) long tensor of token ids, padded with the model's pad id."""

    def __init__(self, hf_tokenizer, max_length: int = 128):
        self.hf, self.max_length = hf_tokenizer, max_length

    def __call__(self, texts: Sequence[str]) -> Tensor:
        if isinstance(texts, str) or not all(isinstance(t, str) for t in texts):
            raise TaskshareError("the tokenizer takes a list of strings")
        out = self.hf(list(texts), padding="max_length", truncation=True, max_length=self.max_length, return_tensors="pt")
        return out["input_ids"]


class PooledEncoder(nn.Module):
    """Token ids -> the encoder's last hidden states pooled over real tokens (mean) or the first (cls)."""

    def __init__(self, model: nn.Module, pad_token_id: int, pooling: str = "mean"):
        super().__init__()
        if pooling not in POOLING:
            raise TaskshareError(f"pooling {pooling!r}; expected one of {POOLING}")
        self.model, self.pad_token_id, self.pooling = model, pad_token_id, pooling

    def forward(self, input_ids: Tensor) -> Tensor:
        if input_ids.dim() != 2 or input_ids.is_floating_point():
            raise TaskshareError(f"text backbones take token ids of shape (batch, length); got "
                                 f"{tuple(input_ids.shape)} {input_ids.dtype}. Tokenize with backbone.tokenizer(texts)")
        mask = (input_ids != self.pad_token_id).long()
        if not _exporting():
            # texts are padded to max_length once, up front; short texts would otherwise pay for every
            # padding column in each attention layer. Columns that are padding in every row carry no
            # information (masked, positions absolute), so dropping them leaves the output unchanged.
            used = int((mask * torch.arange(1, mask.shape[1] + 1, device=mask.device)).max())
            input_ids, mask = input_ids[:, :max(used, 1)], mask[:, :max(used, 1)]
        hidden = self.model(input_ids=input_ids, attention_mask=mask).last_hidden_state
        if self.pooling == "cls":
            return hidden[:, 0]
        weights = mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * weights).sum(1) / weights.sum(1).clamp_min(1.0)


def _exporting() -> bool:
    """Tracing or exporting: a length read from the data would be frozen into the graph."""
    compiler = getattr(torch, "compiler", None)
    return bool(torch.jit.is_tracing() or torch.onnx.is_in_onnx_export()
                or (compiler is not None and getattr(compiler, "is_exporting", lambda: False)()))


def hf_backbone(name_or_path: str | Path | None = None, pooling: str = "mean", max_length: int = 128,
                config=None, tokenizer_path: str | Path | None = None) -> Backbone:
    """An encoder from a hub name (downloads where the network allows), a local folder, or, for
    random initialisation, a transformers config object (`config=BertConfig(...)`; then give
    `tokenizer_path` or use token ids directly)."""
    transformers = require("transformers", "text")
    if config is not None:
        model = transformers.AutoModel.from_config(config).eval()  # as from_pretrained leaves it
        name = type(config).__name__
    else:
        if name_or_path is None:
            raise TaskshareError("hf_backbone needs a hub name, a local folder, or config=")
        try:
            model = transformers.AutoModel.from_pretrained(str(name_or_path))
        except OSError as exc:   # not on disk and not downloadable (offline, or a misspelt name)
            raise TaskshareError(f"the model {str(name_or_path)!r} could not be loaded or fetched ({exc}); give a "
                                 f"local folder written by save_pretrained instead: {{hf: path/to/folder}}") from None
        name, tokenizer_path = str(name_or_path), tokenizer_path or name_or_path
    hf_tok = transformers.AutoTokenizer.from_pretrained(str(tokenizer_path)) if tokenizer_path else None
    pad = hf_tok.pad_token_id if hf_tok is not None else (model.config.pad_token_id or 0)
    trunk = PooledEncoder(model, pad, pooling)
    stages: dict[str, list[str]] = {}
    for n, _ in trunk.named_parameters():
        parts = n.split(".")
        if "layer" in parts:
            i = parts.index("layer")
            key = f"layer{int(parts[i + 1]):03d}"
        elif "embeddings" in parts:
            key = "aa_embeddings"
        else:
            key = "zz_" + parts[1]
        stages.setdefault(key, []).append(n)
    groups = module_groups([stages[k] for k in sorted(stages)])
    targets = [t for t in ("query", "key", "value") if any(n.endswith(f".{t}.weight") for n, _ in trunk.named_parameters())]
    tok = Tokenizer(hf_tok, max_length) if hf_tok is not None else None
    return Backbone(trunk, model.config.hidden_size, groups, targets, "transformers", name, tok)

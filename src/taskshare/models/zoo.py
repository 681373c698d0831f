"""Small models the CLI can build by name (the benchmarks' MLP and 1-D CNN)."""
from __future__ import annotations

from typing import Callable, Sequence

from torch import nn

from ..registry import Registry

MODELS: Registry[Callable[..., nn.Module]] = Registry("model")


@MODELS.register("mlp")
def mlp(in_features: int, num_outputs: int, hidden: Sequence[int] = (256, 256, 256), dropout: float = 0.0) -> nn.Sequential:
    """Linear-ReLU blocks, one block per hidden width, then a Linear output layer."""
    layers: list[nn.Module] = []
    width = in_features
    for h in hidden:
        block: list[nn.Module] = [nn.Linear(width, h), nn.ReLU()]
        if dropout:
            block.append(nn.Dropout(dropout))
        layers.append(nn.Sequential(*block))
        width = h
    layers.append(nn.Linear(width, num_outputs))
    return nn.Sequential(*layers)


class CNN1d(nn.Module):
    """Strided 1-D convolutions (as in the MNIST-1D paper's CNN), optional BatchNorm, then a Linear head."""

    def __init__(self, in_length: int, num_outputs: int, channels: Sequence[int] = (32, 32, 32),
                 kernel_size: int = 5, batch_norm: bool = True):
        super().__init__()
        blocks, c_in, length = [], 1, in_length
        for c in channels:
            layers: list[nn.Module] = [nn.Conv1d(c_in, c, kernel_size, stride=2, padding=kernel_size // 2)]
            if batch_norm:
                layers.append(nn.BatchNorm1d(c))
            layers.append(nn.ReLU())
            blocks.append(nn.Sequential(*layers))
            c_in, length = c, (length + 2 * (kernel_size // 2) - kernel_size) // 2 + 1
        self.features = nn.Sequential(*blocks)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(c_in * length, num_outputs)

    def forward(self, x):
        if x.dim() == 2:  # (batch, length) signals get a channel axis
            x = x.unsqueeze(1)
        return self.fc(self.flatten(self.features(x)))


@MODELS.register("cnn1d")
def cnn1d(in_features: int, num_outputs: int, channels: Sequence[int] = (32, 32, 32), kernel_size: int = 5,
          batch_norm: bool = True) -> CNN1d:
    return CNN1d(in_features, num_outputs, channels, kernel_size, batch_norm)


class CNN2d(nn.Module):
    """Conv-BatchNorm-ReLU-MaxPool stages, then global average pooling and a Linear head."""

    def __init__(self, in_channels: int, num_outputs: int, channels: Sequence[int] = (16, 32, 64)):
        super().__init__()
        stages, c_in = [], in_channels
        for c in channels:
            stages.append(nn.Sequential(nn.Conv2d(c_in, c, 3, padding=1), nn.BatchNorm2d(c), nn.ReLU(), nn.MaxPool2d(2)))
            c_in = c
        self.features = nn.Sequential(*stages, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.fc = nn.Linear(c_in, num_outputs)

    def forward(self, x):
        if x.dim() == 3:  # (batch, H, W) images get a channel axis
            x = x.unsqueeze(1)
        return self.fc(self.features(x))


@MODELS.register("cnn2d")
def cnn2d(in_features: int, num_outputs: int, channels: Sequence[int] = (16, 32, 64)) -> CNN2d:
    """in_features: input channels."""
    return CNN2d(in_features, num_outputs, channels)


def build_model(name: str, in_features: int, num_outputs: int, **kwargs) -> nn.Module:
    from ..errors import TaskshareError
    from ..validate import model_arguments
    builder = MODELS.get(name)
    model_arguments(name, builder, kwargs)
    try:
        return builder(in_features=in_features, num_outputs=num_outputs, **kwargs)
    except (TypeError, ValueError, RuntimeError) as exc:    # a value of the wrong kind, e.g. hidden: 5
        raise TaskshareError(f"model {name!r} cannot be built with in_features={in_features}, "
                             f"num_outputs={num_outputs} and arguments {kwargs}: {exc}") from None


def trunk_factory(name: str, args: dict, example, dense: bool = False) -> Callable[[], nn.Sequential]:
    """Fresh trunks (nn.Sequential, the head removed) of a zoo model for inputs shaped like `example`:
    one per call, as compare_sharing builds one per mode and task. `dense`: image features kept (cnn2d
    without its final pooling), for per-pixel tasks."""
    in_features = example.shape[1] if example.dim() in (2, 4) else 1

    def make() -> nn.Sequential:
        net = build_model(name, in_features, 1, **args)
        if isinstance(net, nn.Sequential):  # mlp: everything but the output layer
            return net[:-1]
        if hasattr(net, "features") and isinstance(net.features, nn.Sequential) and example.dim() == 4:
            return net.features[:-2] if dense else net.features
        from ..errors import TaskshareError
        raise TaskshareError(f"model {name!r} cannot serve as a multi-task trunk for inputs of shape "
                             f"{tuple(example.shape[1:])}; use mlp (flat inputs) or cnn2d (images)")

    return make

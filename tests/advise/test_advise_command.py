"""`taskshare advise` scores every size in the config, and names the sizes it cannot draw."""
import json

import numpy as np
import yaml

from taskshare.cli import main


def test_sizes_larger_than_the_smallest_class_are_named_not_dropped_silently(tmp_path, capsys):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 6)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)
    np.savez(tmp_path / "source.npz", x=x, y=y)
    target_y = np.array([0] * 8 + [1] * 40)          # the smallest class: 8 examples
    np.savez(tmp_path / "target.npz", x=rng.normal(size=(48, 6)).astype(np.float32) + target_y[:, None], y=target_y)
    config = {"source": {"npz": str(tmp_path / "source.npz")}, "target": {"npz": str(tmp_path / "target.npz")},
              "model": {"name": "mlp", "args": {"hidden": [8]}}, "output": str(tmp_path / "out"),
              "pretrain": {"train": {"epochs": 1, "progress": False, "device": "cpu"}},
              "transfer": {"shots": [2, 5, 20, "all"]}}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    assert main(["advise", str(tmp_path / "c.yaml")]) == 0
    text = " ".join(capsys.readouterr().out.split())
    scored = [a["labels_per_class"] for a in json.loads((tmp_path / "out_advice" / "advice.json").read_text())]
    assert scored == [2, "all"]
    assert "not scored: k=5, 20 labels per class" in text and "smallest class has" in text

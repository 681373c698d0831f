"""Per-label values of multi-label tasks in the multi-task reports (Markdown and HTML): each label's
AUROC and AP over its known test entries, and the count of labels skipped."""
import json
import math

import numpy as np
import pytest
import torch
from sklearn.metrics import average_precision_score, roc_auc_score

from taskshare import Task, TrainConfig
from taskshare.data.multitask import MultiTaskDataset
from taskshare.evaluate.multilabel import label_values
from taskshare.evaluate.report.rebuild import rebuild
from taskshare.evaluate.report.sharing import sharing_markdown
from taskshare.train.compare_sharing import compare_sharing


def test_each_label_value_matches_sklearn_over_its_known_entries():
    rng = np.random.default_rng(3)
    y = (rng.random((80, 4)) < [0.2, 0.5, 0.8, 0.5]).astype(np.float32)
    scores = (y * 0.8 + rng.normal(0, 1, y.shape)).astype(np.float32)
    y[rng.random(y.shape) < 0.3] = np.nan
    y[:, 3] = np.where(np.isnan(y[:, 3]), np.nan, 1.0)        # one class only among its known entries
    got = Task("tags", "multilabel", num_classes=4).metrics(torch.as_tensor(scores), torch.as_tensor(y))
    values = label_values(got)
    assert len(values) == 4 and got["labels_skipped"] == 1
    for j in range(3):
        keep = ~np.isnan(y[:, j])
        assert values[j][0] == pytest.approx(roc_auc_score(y[keep, j], scores[keep, j]), abs=1e-9)
        assert values[j][1] == pytest.approx(average_precision_score(y[keep, j], scores[keep, j]), abs=1e-9)
    assert math.isnan(values[3][0]) and math.isnan(values[3][1])
    assert label_values({"auroc": 0.7}) == []                  # other kinds: no per-label values


@pytest.fixture(scope="module")
def compared():
    torch.manual_seed(0)
    x = torch.randn(240, 6)
    tags = (x[:, :3] > 0).float()
    tags[:, 2] = 0.0                                           # label 2 never positive: skipped
    tags[torch.rand(tags.shape) < 0.2] = float("nan")
    kind = (x[:, 3] > 0).long()
    data = lambda rows: MultiTaskDataset(x[rows], {"tags": tags[rows], "kind": kind[rows]})   # noqa: E731
    tasks = [Task("tags", "multilabel", num_classes=3), Task("kind", num_classes=2)]
    trunk = lambda: torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.ReLU())            # noqa: E731
    rows = compare_sharing(trunk, tasks, data(slice(0, 160)), data(slice(160, 200)), data(slice(200, 240)),
                           ["single", "hard"], TrainConfig(epochs=2, min_steps=5, progress=False))
    return tasks, rows


def test_markdown_report_shows_each_label_and_the_skipped_count(compared):
    tasks, rows = compared
    text = sharing_markdown(tasks, rows)
    assert "## tags: each label" in text and "## kind: each label" not in text   # multi-label tasks only
    table = text.split("## tags: each label")[1]
    assert "labels skipped (one class only among the known entries): single 1, hard 1" in table
    lines = [l for l in table.splitlines() if l.startswith("| ") and l[2].isdigit()]
    assert [l.split(" | ")[0] for l in lines] == ["| 0", "| 1", "| 2"]
    assert "skipped" in lines[2] and "skipped" not in lines[0]
    auroc, ap = label_values(next(r for r in rows if r.mode == "hard").test["tags"])[0]
    assert f"{100 * auroc:.1f} / {100 * ap:.1f}" in lines[0].split(" | ")[2]


@pytest.mark.slow
def test_html_report_shows_each_label_from_the_saved_results(compared, tmp_path):
    tasks, rows = compared
    (tmp_path / "multitask_results.json").write_text(json.dumps({"config": {}, "results": [r.to_dict() for r in rows]}))
    rebuild(tmp_path)
    page = (tmp_path / "report.html").read_text()
    assert "tags: each label" in page and "kind: each label" not in page
    assert "single AUROC / AP" in page and "hard 1" in page
    auroc, ap = label_values(next(r for r in rows if r.mode == "single").test["tags"])[1]
    assert f"{100 * auroc:.1f} / {100 * ap:.1f}" in page

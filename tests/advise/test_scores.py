"""Transferability scores on hand-made features with a known answer, and advise end to end."""
import math

import pytest
import torch
from torch import nn

from taskshare import Task, TaskshareError, TrainConfig, fit
from taskshare.advise import advise, h_score, leep, logme, nce


def _blobs(n=300, d=8, classes=3, spread=4.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, classes, (n,), generator=g)
    centers = torch.randn(classes, d, generator=g) * spread
    return centers[y] + torch.randn(n, d, generator=g), y


def test_logme_and_h_score_prefer_separable_labels_to_shuffled_ones():
    x, y = _blobs()
    shuffled = y[torch.randperm(len(y), generator=torch.Generator().manual_seed(1))]
    assert logme(x, y) > logme(x, shuffled)
    assert h_score(x, y) > h_score(x, shuffled)
    weak_x, _ = _blobs(spread=0.3)
    assert logme(x, y) > logme(weak_x, y)


def test_leep_and_nce_by_hand():
    y = torch.tensor([0, 0, 1, 1])
    perfect = torch.tensor([[0.0, 1.0], [0.0, 1.0], [1.0, 0.0], [1.0, 0.0]])   # source class 1 = target 0
    assert leep(perfect, y) == pytest.approx(0.0, abs=1e-12)
    assert nce(perfect.argmax(1), y) == pytest.approx(0.0, abs=1e-12)
    useless = torch.full((4, 2), 0.5)
    assert leep(useless, y) == pytest.approx(math.log(0.5))
    assert nce(torch.zeros(4, dtype=torch.long), y) == pytest.approx(math.log(0.5))
    with pytest.raises(TaskshareError, match="apply softmax"):
        leep(torch.randn(4, 2), y)


def _xor(n, seed):
    """4 classes from an XOR of two coordinates and the sign of a third: a random trunk's features
    separate them poorly, a trained one's well."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 10, generator=g)
    return x, ((x[:, 0] > 0) ^ (x[:, 1] > 0)).long() * 2 + (x[:, 2] > 0).long()


def _source_model(epochs, seed=0):
    torch.manual_seed(seed)
    x, y = _xor(2000, 1)
    model = nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Linear(32, 16), nn.ReLU(), nn.Linear(16, 4))
    if epochs:
        fit(model, Task("a", num_classes=4), (x, y), None, TrainConfig(epochs=epochs, min_steps=0, progress=False, device="cpu"))
    return model


@pytest.mark.slow
def test_advise_ranks_a_trained_source_above_an_untrained_one_and_recommends():
    x, y = _xor(300, 2)
    trained, untrained = _source_model(40), _source_model(0)
    result = advise((x, y), Task("b", num_classes=4), {"trained": trained, "untrained": untrained})
    assert [c.name for c in result.candidates] == ["trained", "untrained"]
    assert result.candidates[0].logme > result.random_logme
    assert result.best == "trained" and result.strategy in ("linear_probe", "last_k", "lp_ft", "finetune")
    assert result.facts["labels_per_class"] >= 40 and "ranks first" in result.reason
    assert result.candidates[0].leep is not None and result.candidates[0].layers


def test_advise_flags_inputs_that_do_not_fit_and_bad_tasks():
    x, y = _blobs(n=50, d=10, classes=4)
    wrong = nn.Sequential(nn.Linear(7, 4), nn.Linear(4, 4))
    result = advise((x, y), Task("b", num_classes=4), {"ok": _source_model(0), "wrong": wrong})
    assert result.facts["inputs_fit"] == {"ok": True, "wrong": False}
    with pytest.raises(TaskshareError, match="no candidate accepts the target inputs"):
        advise((x, y), Task("b", num_classes=4), {"wrong": wrong})
    with pytest.raises(TaskshareError, match="advise scores classification targets"):
        advise((x, y.float()), Task("r", "regression"), {"ok": _source_model(0)})


def _mackay_to_stagnation(F, t, cap=200_000):
    """LogME's evidence for one target column from its formula, the fixed point iterated until alpha and
    beta stop changing at float64's precision (the same 1e-10 guards as the paper's updates)."""
    import numpy as np
    n, d = F.shape
    U, sig, _ = np.linalg.svd(F, full_matrices=False)
    s, x2 = sig ** 2, (U.T @ t) ** 2
    outside = max(t @ t - x2.sum(), 0.0)

    def parts(a, b):
        r = a / b
        return (s / (s + r)).sum(), (s * x2 / (s + r) ** 2).sum(), (x2 * (r / (s + r)) ** 2).sum() + outside

    a = b = 1.0
    for _ in range(cap):
        gamma, m2, res2 = parts(a, b)
        na, nb = gamma / (m2 + 1e-10), (n - gamma) / (res2 + 1e-10)
        if abs(na / a - 1) < 1e-15 and abs(nb / b - 1) < 1e-15:
            break
        a, b = na, nb
    _, m2, res2 = parts(a, b)
    log_det = np.log(a + b * s).sum() + (d - len(s)) * math.log(a)
    return (n * math.log(b) + d * math.log(a) - n * math.log(2 * math.pi) - b * res2 - a * m2 - log_det) / (2 * n)


def test_logme_reaches_the_evidence_fixed_point():
    # a slow case: 16 samples, 45 features, 3 classes; 50 plain iterations stopped at -0.83076
    import numpy as np
    r = np.random.default_rng(23)
    n, d, C = int(r.integers(10, 200)), int(r.integers(2, 64)), int(r.integers(2, 6))
    y = r.integers(0, C, n)
    F = r.normal(size=(n, d)) + float(r.uniform(0, 2)) * np.eye(C, d)[y]
    expected = np.mean([_mackay_to_stagnation(F, (y == c).astype(float)) for c in range(C)])
    assert (n, d, C) == (16, 45, 3) and abs(expected - (-0.82730)) < 1e-5
    assert abs(logme(torch.tensor(F), torch.tensor(y)) - expected) < 1e-9


def test_logme_is_the_maximum_of_the_marginal_likelihood():
    # more samples than features: the evidence, log N(t; 0, I / beta + F F^T / alpha), has its maximum
    # inside, found here by a direct search over (log alpha, log beta)
    import numpy as np
    from scipy.optimize import minimize
    x, y = _blobs(n=60, d=5, classes=3, spread=1.0)
    F, n = x.double().numpy(), 60
    values = []
    for c in range(3):
        t = (y == c).double().numpy()

        def minus_evidence(p):
            L = np.linalg.cholesky(np.exp(-p[1]) * np.eye(n) + np.exp(-p[0]) * F @ F.T)
            z = np.linalg.solve(L, t)
            return 0.5 * z @ z + np.log(np.diag(L)).sum() + n / 2 * math.log(2 * math.pi)

        best = min((minimize(minus_evidence, p0, method="Nelder-Mead",
                             options={"xatol": 1e-10, "fatol": 1e-13, "maxiter": 4000}) for p0 in ([0, 0], [2, 2])),
                   key=lambda res: res.fun)
        values.append(-best.fun / n)
    assert abs(logme(x, y) - float(np.mean(values))) < 1e-8

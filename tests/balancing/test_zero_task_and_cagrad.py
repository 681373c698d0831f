"""A task with a zero gradient (no known label in the batch) must not change the others' update, and
CAGrad's inner problem is solved to float64 precision (checked against an independent solver)."""
import numpy as np
import pytest
import torch

from taskshare.balancing import BALANCERS, CAGrad, IMTLG
from taskshare.balancing.cagrad import cagrad_inner
from taskshare.balancing import build_balancer

GRADIENT_METHODS = [n for n in BALANCERS.names() if BALANCERS.get(n).needs != "losses"]
# The property is undefined where a zero gradient is itself the method's answer: MGDA's hull then holds
# the origin (the min-norm point is 0), and CAGrad's worst task is the zero one (every update improves
# it by exactly 0, so the max-min objective no longer sees the other tasks).
UNDEFINED = {"mgda", "cagrad"}
# These average over the T tasks (each task's projection, or the aligned basis scaled by 1/T): a zero
# task leaves the direction unchanged and scales it by T / (T + 1), like the mean gradient.
AVERAGING = {"upgrad", "dualproj", "aligned_mtl"}


def test_every_gradient_method_is_classified():
    assert UNDEFINED | AVERAGING <= set(GRADIENT_METHODS)


@pytest.mark.parametrize("name", [n for n in GRADIENT_METHODS if n not in UNDEFINED])
@pytest.mark.parametrize("seed", range(3))
def test_a_zero_gradient_task_leaves_the_update_unchanged(name, seed):
    # two tasks (PCGrad and GradVac draw a random order, which only matters from three live tasks)
    T = 2 if name in ("pcgrad", "gradvac") else 3
    G = torch.randn(T, 6, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    G = G * torch.tensor([1.0, 5.0, 0.2][:T], dtype=torch.float64).unsqueeze(1)
    with_zero = torch.cat([G[:1], torch.zeros(1, 6, dtype=torch.float64), G[1:]])
    torch.manual_seed(0)
    alone = build_balancer(name, T).direction(G)
    torch.manual_seed(0)
    joined = build_balancer(name, T + 1).direction(with_zero)
    scale = T / (T + 1) if name in AVERAGING else 1.0
    assert alone.norm() > 1e-3
    assert torch.allclose(joined, scale * alone, atol=1e-9 * float(G.norm()))


def test_imtl_g_with_a_zero_task_is_the_update_of_the_others():
    J = torch.tensor([[1.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 0.0]], dtype=torch.float64)
    expected = torch.tensor([2 / 3, 2 / 3, 0.0], dtype=torch.float64)
    assert torch.allclose(IMTLG().direction(J), expected, atol=1e-12)
    assert torch.allclose(IMTLG().direction(J[:2]), expected, atol=1e-12)
    assert torch.allclose(IMTLG().task_weights(J @ J.T), torch.tensor([2 / 3, 1 / 3, 0.0], dtype=torch.float64))


def test_imtl_g_more_tasks_than_dimensions():
    # three live tasks in two dimensions (two share a direction) and a zero one: the equal-projection
    # update exists and is not zero
    G = torch.tensor([[1.0, 0.0], [2.0, 0.0], [0.0, 1.0], [0.0, 0.0]], dtype=torch.float64)
    d = IMTLG().direction(G)
    assert float(d.norm()) > 0.5 and abs(float(d[0] - d[1])) < 1e-12
    assert torch.allclose(IMTLG().direction(G[:3]), d)
    # three unit directions in general position in two dimensions: no non-zero update has equal projections
    # on all three (u1.d = u2.d = u3.d forces d = 0), so the exact answer is 0, not a failure to solve
    G = torch.tensor([[1.0, 0.1], [0.2, 1.0], [2.0, 1.0]], dtype=torch.float64)
    assert float(IMTLG().direction(G).norm()) < 1e-9


def _objective(K, radius):
    b = torch.full((K.shape[0],), 1.0 / K.shape[0], dtype=torch.float64)
    return lambda v: float(v @ K @ b + radius * (v @ K @ v).clamp_min(0).sqrt())


def _scipy_minimum(K, radius, starts=4):
    from scipy.optimize import minimize
    Kn, T = K.numpy(), K.shape[0]
    f = _objective(K, radius)
    best = np.inf
    for s in range(starts):
        x0 = np.random.default_rng(s).dirichlet(np.ones(T))
        res = minimize(lambda v: v @ Kn.mean(1) + radius * np.sqrt(max(v @ Kn @ v, 0.0)), x0, method="SLSQP",
                       bounds=[(0, 1)] * T, constraints=[{"type": "eq", "fun": lambda v: v.sum() - 1}],
                       options={"ftol": 1e-15, "maxiter": 1000})
        v = np.clip(res.x, 0, None)
        best = min(best, f(torch.from_numpy(v / v.sum())))
    return best


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(8))
def test_cagrad_inner_problem_to_1e_8_of_an_independent_solver(seed):
    g = torch.Generator().manual_seed(seed)
    T, P = [(2, 5), (3, 2), (5, 20), (8, 4)][seed % 4]
    G = torch.randn(T, P, generator=g, dtype=torch.float64) * torch.rand(T, 1, generator=g, dtype=torch.float64) * 4
    K = G @ G.T
    radius = [0.2, 0.5, 1.0, 3.0][seed % 4] * float(G.mean(0).norm())
    w = cagrad_inner(K, radius)
    assert abs(float(w.sum()) - 1) < 1e-12 and float(w.min()) >= 0
    assert _objective(K, radius)(w) <= _scipy_minimum(K, radius) + 1e-8 * float(K.diagonal().max())


def test_cagrad_inner_problem_on_a_fine_simplex_grid():
    G = torch.tensor([[1.0, 0.3, 0.0], [-0.6, 1.0, 0.2], [0.1, -0.4, 2.0]], dtype=torch.float64)
    K = G @ G.T
    radius = 0.8 * float(G.mean(0).norm())
    f = _objective(K, radius)
    n = 300
    a, b = torch.meshgrid(torch.arange(n + 1), torch.arange(n + 1), indexing="ij")
    keep = a + b <= n
    W = torch.stack([a[keep], b[keep], n - a[keep] - b[keep]], 1).double() / n
    values = W @ K.mean(1) + radius * ((W @ K) * W).sum(1).clamp_min(0).sqrt()
    assert f(cagrad_inner(K, radius)) <= float(values.min()) + 1e-12


def test_cagrad_when_the_hull_holds_the_origin():
    G = torch.tensor([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    d = CAGrad(c=0.5).direction(G)
    assert torch.isfinite(d).all()
    assert float((G @ d).min()) >= float((G @ G.mean(0)).min()) - 1e-9


def _ball_ratio(G, d, c=0.5):
    """|d (1 + c^2) - g0| / (c |g0|): CAGrad's update lies in the ball of radius c |g0| around the mean
    gradient g0 (the default rescale divides it by 1 + c^2), so this is at most 1."""
    G = torch.as_tensor(G, dtype=torch.float64)
    g0 = G.mean(0)
    return float((d.double() * (1 + c * c) - g0).norm() / (c * g0.norm()))


def _near_collinear_cases():
    rng = np.random.default_rng(1)
    g = rng.normal(size=(3, 6))
    yield np.outer(rng.normal(size=4), g[0])        # four collinear gradients, mixed signs: the hull holds 0
    r = np.random.default_rng(2)
    v = r.normal(size=50)
    yield np.stack([v, -3 * v])                      # opposite, unequal
    noise = [r.normal(size=50) for _ in range(4)][-1]
    yield np.stack([v, -3 * v + 1e-6 * noise])


@pytest.mark.parametrize("case", range(3))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_cagrad_stays_in_its_ball_on_near_collinear_gradients(case, dtype):
    # in float32 |g_w| read from the rounded Gramian fell to rounding noise and the update grew to
    # 1e5 (four collinear gradients) and 7e8 to 6e9 ([v, -3v]) where the ball's radius is 0.3 and 3.5
    G = list(_near_collinear_cases())[case]
    grads = torch.tensor(G, dtype=dtype)
    method = CAGrad()
    for d in [method.direction(grads), method.task_weights(grads @ grads.T) @ grads]:
        assert torch.isfinite(d).all()
        assert _ball_ratio(G, d) <= 1 + 1e-5
    # with the gradients at hand the precision of the input does not matter
    exact = method.direction(torch.tensor(G))
    assert torch.allclose(method.direction(grads).double(), exact, rtol=1e-5, atol=1e-6 * float(exact.norm()))


@pytest.mark.parametrize("seed", range(12))
def test_cagrad_stays_in_its_ball_on_random_float32_gradients(seed):
    r = np.random.default_rng(seed)
    T, P = 2 + seed % 4, [10, 1000, 20000][seed % 3]
    G = np.outer(r.normal(size=T), r.normal(size=P)) + 10.0 ** r.uniform(-8, 0) * r.normal(size=(T, P))
    grads = torch.tensor(G, dtype=torch.float32)
    G = grads.double()                              # the gradients the method was given, exactly
    for d in [CAGrad().direction(grads), CAGrad().task_weights(grads @ grads.T) @ grads]:
        assert _ball_ratio(G, d) <= 1 + 1e-5


@pytest.mark.parametrize("seed", range(8))
def test_cagrad_stays_in_its_ball_through_the_trainers_float64_gramian_of_float32_products(seed):
    # the trainer sums float32 products into a float64 Gramian: judged by its dtype the Gramian looked
    # exact, and an update read |g_w| from rounding noise (679 times the ball's radius on one of these)
    from taskshare.train.jacobian import gramian_of
    from taskshare.train.update import guarded_weights
    r = np.random.default_rng(seed + 20)
    T, P = int(r.integers(2, 6)), int(r.integers(5, 2000))
    G = np.outer(r.normal(size=T), r.normal(size=P)) + r.normal(size=(T, P)) * 10 ** r.uniform(-9, -5)
    grads = torch.tensor(G, dtype=torch.float32)
    d = guarded_weights(CAGrad(), gramian_of([grads]), 1.0, grads.dtype).float() @ grads
    assert _ball_ratio(grads.double(), d) <= 1 + 1e-3


def test_cagrad_on_a_float32_gramian_of_ordinary_conflicting_gradients_is_the_exact_answer():
    # the rounding bound is a floor for |g_w| only: above it nothing changes (it was added to |g_w|^2
    # and subtracted from |g0|^2, which turned two conflicting tasks into the plain mean)
    G = torch.tensor([[1.0, 0.02], [-1.0, 0.02]])
    exact = CAGrad().task_weights((G @ G.T).double())
    assert torch.allclose(CAGrad().task_weights(G @ G.T).double(), exact, rtol=1e-5)
    assert torch.allclose(exact, torch.tensor([0.6, 0.6], dtype=torch.float64), atol=1e-9)

"""The losses of DANN, CDAN, MDD, MCD, JAN, AFN, BSP, PADA and SHOT, and the DEV / IWV scores, on inputs small
enough to compute by hand."""
import math

import pytest
import torch

from taskshare.adapt import (PADA, adaptive_feature_norm, batch_spectral_penalty, centroid_pseudo_labels,
                             classifier_discrepancy, dev_score, gaussian_kernels, information_maximization,
                             iwv_score, joint_mmd, margin_disparity, multi_kernel_mmd)


def test_margin_disparity_by_hand():
    # the adversary is uniform over 4 classes: agreeing costs log 4 per source sample, the target
    # term is -log(1 - 1/4); margin 2 -> 2 log 4 - log(3/4)
    main = torch.tensor([[5.0, 0, 0, 0], [0, 5.0, 0, 0]])
    uniform = torch.zeros(2, 4)
    assert float(margin_disparity(main, uniform, main, uniform, margin=2.0)) == pytest.approx(
        2 * math.log(4) - math.log(0.75), rel=1e-6)
    # an adversary that agrees on the source (confidently) and disagrees on the target scores lower
    agree = torch.tensor([[20.0, 0, 0, 0], [0, 20.0, 0, 0]])
    disagree = torch.tensor([[0, 20.0, 0, 0], [20.0, 0, 0, 0]])
    assert float(margin_disparity(main, agree, main, disagree, margin=2.0)) < 1e-4


def test_classifier_discrepancy_by_hand():
    a = torch.tensor([[30.0, 0.0]])     # ~(1, 0)
    b = torch.tensor([[0.0, 30.0]])     # ~(0, 1)
    assert float(classifier_discrepancy(a, b)) == pytest.approx(1.0, abs=1e-6)   # |1-0| + |0-1|, over 2 entries
    assert float(classifier_discrepancy(a, a)) == 0.0


def test_adaptive_feature_norm_value_and_gradient():
    f = torch.tensor([[3.0, 4.0], [0.0, 2.0]], requires_grad=True)
    loss = adaptive_feature_norm(f, step=0.5)
    assert float(loss.detach()) == pytest.approx(0.25)          # always step^2
    loss.backward()
    # d/df of (||f|| - c)^2 / n = 2 (||f|| - c) f / ||f|| / n = -step f / ||f||
    assert torch.allclose(f.grad, torch.tensor([[-0.3, -0.4], [0.0, -0.5]]))


def test_batch_spectral_penalty_by_hand():
    s = torch.diag(torch.tensor([3.0, 1.0]))           # singular values 3, 1
    t = torch.diag(torch.tensor([2.0, 2.0]))
    assert float(batch_spectral_penalty(s, t, k=1)) == pytest.approx(9 + 4)
    assert float(batch_spectral_penalty(s, t, k=2)) == pytest.approx(9 + 1 + 4 + 4)


def test_kernels_are_scale_invariant_and_mmd_never_pulls_features_together():
    g = torch.Generator().manual_seed(0)
    s, t = torch.randn(16, 4, generator=g), torch.randn(16, 4, generator=g) + 1
    assert torch.allclose(gaussian_kernels(torch.cat([s, t])), gaussian_kernels(torch.cat([s, t]) * 0.01), atol=1e-5)
    z = torch.cat([s, t]).requires_grad_(True)
    multi_kernel_mmd(z[:16], z[16:]).backward()
    # Euler: a scale-invariant loss has no gradient along z itself (no push to shrink the features)
    assert abs(float((z.grad * z).sum())) < 1e-5 * float(z.grad.norm() * z.norm())


def test_joint_mmd_by_hand_and_against_dan():
    g = torch.Generator().manual_seed(1)
    f = torch.randn(8, 3, generator=g)
    p = torch.softmax(torch.randn(8, 2, generator=g), 1)
    assert float(joint_mmd([f, p], [f.clone(), p.clone()])) == pytest.approx(0.0, abs=1e-6)
    # identical predictions on both sides: their kernel block is constant within the block structure only
    # when all predictions are equal; then JMMD reduces to the features' MMD
    same = torch.full((8, 2), 0.5)
    assert float(joint_mmd([f, same], [f + 2, same])) == pytest.approx(float(multi_kernel_mmd(f, f + 2)), rel=1e-5)


def test_pada_weights_follow_target_predictions():
    method = PADA(momentum=0.0)
    method.build(4, 3)
    target_logits = torch.tensor([[10.0, 0, -10], [10.0, 0, -10]])   # the target looks like class 0 only
    labels = torch.tensor([0, 2])
    loss = method.loss(torch.randn(2, 4), torch.randn(2, 4), torch.zeros(2, 3), target_logits, 0.5, labels=labels)
    w = method.target_class_weights()
    assert float(w[0]) == 1.0 and float(w[2]) < 1e-6 and math.isfinite(float(loss))
    assert torch.equal(method.state_dict()["mean_prediction"], method.mean_prediction)   # saved with the run


def test_information_maximization_by_hand():
    confident_diverse = torch.tensor([[50.0, 0.0], [0.0, 50.0]])
    assert float(information_maximization(confident_diverse)) == pytest.approx(-math.log(2), abs=1e-6)
    collapsed = torch.tensor([[50.0, 0.0], [50.0, 0.0]])
    assert float(information_maximization(collapsed)) == pytest.approx(0.0, abs=1e-6)
    uniform = torch.zeros(2, 2)
    assert float(information_maximization(uniform)) == pytest.approx(0.0, abs=1e-6)


def test_centroid_pseudo_labels_fix_a_wrong_confident_prediction():
    # two tight clusters; the classifier is right on 3 of each but wrong on one point of cluster 1
    f = torch.tensor([[1.0, 0.0]] * 4 + [[0.0, 1.0]] * 4) + 0.01 * torch.arange(8.0)[:, None]
    logits = torch.tensor([[4.0, 0.0]] * 4 + [[0.0, 4.0]] * 3 + [[4.0, 0.0]])
    assert centroid_pseudo_labels(f, logits).tolist() == [0, 0, 0, 0, 1, 1, 1, 1]


def test_dev_and_iwv_by_hand():
    losses = torch.tensor([1.0, 2.0, 3.0, 4.0])
    flat = torch.ones(4)
    assert iwv_score(losses, flat) == pytest.approx(2.5) and dev_score(losses, flat) == pytest.approx(2.5)
    w = torch.tensor([0.5, 0.5, 1.5, 1.5])
    wl = w * losses                                     # 0.5, 1, 4.5, 6: mean 3
    cov = float(((wl - wl.mean()) * (w - w.mean())).sum() / 3)
    eta = -cov / float(w.var())
    assert iwv_score(losses, w) == pytest.approx(3.0)
    assert dev_score(losses, w) == pytest.approx(3.0 + eta * 1.0 - eta)   # mean(w) = 1: the control variate adds 0
    w2 = torch.tensor([0.5, 0.5, 1.5, 2.5])             # mean 1.25: DEV corrects the weights' excess
    wl2 = w2 * losses
    eta2 = -float(((wl2 - wl2.mean()) * (w2 - w2.mean())).sum() / 3) / float(w2.var())
    assert dev_score(losses, w2) == pytest.approx(float(wl2.mean()) + eta2 * 0.25)
    assert dev_score(losses, w2) != pytest.approx(iwv_score(losses, w2))


@pytest.mark.slow
def test_pada_learns_which_source_classes_the_target_lacks():
    from torch import nn

    from taskshare import Task, TrainConfig
    from taskshare.adapt import fit_adaptation
    from taskshare.models.trunk_head import TrunkHead
    g = torch.Generator().manual_seed(0)
    centres = torch.tensor([[3.0, 0.0], [-3.0, 0.0], [0.0, 3.0]])
    y = torch.randint(0, 3, (300,), generator=g)
    x = centres[y] + 0.5 * torch.randn(300, 2, generator=g)
    yt = torch.randint(0, 2, (200,), generator=g)            # the target holds classes 0 and 1 only
    xt = centres[yt] + 0.5 * torch.randn(200, 2, generator=g) + 0.3
    torch.manual_seed(0)
    model = TrunkHead(nn.Sequential(nn.Linear(2, 16), nn.ReLU()), nn.Linear(16, 3))
    method = PADA(momentum=0.9)
    fit_adaptation(model, Task("c", num_classes=3), (x, y), xt, None,
                   TrainConfig(epochs=20, batch_size=32, lr=5e-3, min_steps=0, progress=False, device="cpu"), method=method)
    w = method.target_class_weights()
    assert float(w[2]) < 0.2 < 0.6 < float(w[0]) and float(w[1]) > 0.6, w


def test_dann_domain_loss_and_cdan_conditioned_loss_by_hand():
    from torch import nn

    from taskshare.adapt import CDAN
    from taskshare.adapt.dann import domain_loss
    assert domain_loss(torch.zeros(3), torch.zeros(5)).item() == pytest.approx(math.log(2))
    expected = 0.5 * (math.log(1 + math.exp(-2)) + math.log(1 + math.exp(-1)))      # source = 1, target = 0
    assert domain_loss(torch.tensor([2.0]), torch.tensor([-1.0])).item() == pytest.approx(expected)

    cdan = CDAN()
    cdan.build(2, 2)
    assert not cdan.randomized
    # the multilinear map: every probability times every feature, class-major
    mapped = cdan._map(torch.tensor([[1.0, 2.0]]), torch.tensor([[0.25, 0.75]]))
    assert torch.allclose(mapped, torch.tensor([[0.25, 0.5, 0.75, 1.5]]))
    cdan.discriminator = nn.Linear(4, 1, bias=False)
    nn.init.ones_(cdan.discriminator.weight)             # the domain logit: the sum of the map
    # source: f = (1, 0), uniform prediction: logit 1, weight 1 (alone in its domain)
    # target: f = (0, 1), a certain prediction: logit 1, weight 1 + e^0 = 2; f = 0, uniform: logit 0, weight 1.5
    loss = cdan.loss(torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 1.0], [0.0, 0.0]]), torch.zeros(1, 2),
                     torch.tensor([[30.0, -30.0], [0.0, 0.0]]), progress=1.0)
    expected = 0.5 * (math.log(1 + math.exp(-1)) + 2 / 3.5 * math.log(1 + math.e) + 1.5 / 3.5 * math.log(2))
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    cdan.entropy_weighting = False                        # plain CDAN: every sample alike
    loss = cdan.loss(torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 1.0], [0.0, 0.0]]), torch.zeros(1, 2),
                     torch.tensor([[30.0, -30.0], [0.0, 0.0]]), progress=1.0)
    expected = 0.5 * (math.log(1 + math.exp(-1)) + 0.5 * (math.log(1 + math.e) + math.log(2)))
    assert loss.item() == pytest.approx(expected, rel=1e-5)

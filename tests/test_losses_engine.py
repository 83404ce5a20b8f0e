import pytest
import torch

from restyle.losses import content_loss, gram_loss, gram_matrix, relative_mse, total_variation
from restyle.optimize import Engine, Objective, Stop, pyramid_sizes, run_pyramid


def test_gram_matrix_by_hand():
    f = torch.tensor([[[[1.0, 2.0]], [[3.0, 4.0]]]])  # N=1, C=2, H=1, W=2
    g = gram_matrix(f)
    assert torch.allclose(g, torch.tensor([[[5.0, 11.0], [11.0, 25.0]]]) / 2)


def test_gram_gradient_is_exact():
    # gram_matrix's own backward (one product with the symmetrised gradient) against autograd
    # on the plain formula, in the same float32 arithmetic
    x = torch.randn(2, 3, 4, 5, requires_grad=True)
    target = torch.randn(2, 3, 3)
    (gram_matrix(x) - target).pow(2).sum().backward()
    f = x.detach().permute(0, 2, 3, 1).reshape(2, 20, 3).requires_grad_(True)
    ((f.transpose(1, 2) @ f / 20) - target).pow(2).sum().backward()
    assert torch.allclose(x.grad, f.grad.reshape(2, 4, 5, 3).permute(0, 3, 1, 2), atol=1e-5)


def test_gram_ignores_position():
    f = torch.rand(1, 8, 6, 6)
    shuffled = f.flatten(2)[..., torch.randperm(36)].view(1, 8, 6, 6)
    assert torch.allclose(gram_matrix(f), gram_matrix(shuffled), atol=1e-5)
    assert gram_loss(shuffled, gram_matrix(f)) < 1e-8
    assert content_loss(shuffled, f) > 0.1


def test_relative_losses_are_scale_free():
    a, b = torch.rand(1, 4, 5, 5), torch.rand(1, 4, 5, 5)
    assert torch.allclose(relative_mse(a, b), relative_mse(10 * a, 10 * b))
    assert relative_mse(a, a) == 0


def test_total_variation():
    assert total_variation(torch.full((1, 3, 8, 8), 0.3)) == 0
    noisy = torch.rand(1, 3, 8, 8)
    assert total_variation(noisy) > 0.1
    assert total_variation(noisy) > 10 * total_variation(noisy.mean(2, keepdim=True).expand(-1, -1, 8, -1) * 0.1)


def test_objective_composes_and_scales():
    f = {"a": torch.ones(1)}
    obj = Objective.term("x", lambda feats, img: feats["a"].sum(), ["a"]) + \
        3.0 * Objective.term("y", lambda feats, img: img.sum(), [])
    total, parts = obj.evaluate(f, torch.full((2,), 2.0))
    assert float(total) == pytest.approx(13.0)
    assert parts == {"x": 1.0, "y": 12.0}
    assert obj.layers == ["a"]


@pytest.mark.parametrize("optimizer", ["lbfgs", "adam"])
def test_engine_reduces_a_feature_loss(vgg, optimizer):
    g = torch.Generator().manual_seed(0)
    target_img = torch.rand(1, 3, 32, 32, generator=g)
    with torch.no_grad():
        target = vgg(target_img, ["relu2_1"])["relu2_1"]
    obj = Objective.term("content", lambda f, _: ((f["relu2_1"] - target) ** 2).mean() /
                         (target ** 2).mean(), ["relu2_1"])
    losses = []
    engine = Engine(vgg, optimizer, lr=0.05 if optimizer == "adam" else None, precision="fp32")
    out = engine.run(torch.full((1, 3, 32, 32), 0.5), obj, 15,
                     lambda i, loss, parts, img: losses.append(loss))
    assert len(losses) == 15
    assert losses[-1] < 0.5 * losses[0]
    assert out.min() >= 0 and out.max() <= 1


def test_pyramid_sizes():
    assert pyramid_sizes(384, 512, 256) == [(192, 256), (384, 512)]
    assert pyramid_sizes(768, 1024, 256) == [(192, 256), (384, 512), (768, 1024)]
    assert pyramid_sizes(200, 200, 256) == [(200, 200)]


def test_stop_callback_ends_early(vgg):
    seen = []

    def cb(p):
        seen.append(p.step)
        if p.step == 3:
            raise Stop

    obj = Objective.term("tv", lambda f, img: ((img - 0.2) ** 2).mean(), [])
    engine = Engine(vgg, "adam", lr=0.05, precision="fp32", callbacks=[cb])
    out = run_pyramid(engine, [(16, 16), (32, 32)], [5, 5], lambda s: obj,
                      lambda s: torch.full((1, 3, *s), 0.5))
    assert seen == [1, 2, 3]
    assert out.shape[-2:] == (32, 32)

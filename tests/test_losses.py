import torch

from painterly.losses import (content_distance, content_loss, gram_matrix, style_distance,
                              style_loss, tv_loss)


def test_gram_of_known_tensor():
    f = torch.tensor([[1.0, 2.0], [3.0, 4.0]]).reshape(1, 2, 1, 2)  # C=2, H=1, W=2
    # channel 0 = (1, 2), channel 1 = (3, 4); G = F Fᵀ / (H·W)
    expected = torch.tensor([[5.0, 11.0], [11.0, 25.0]]) / 2
    assert torch.allclose(gram_matrix(f)[0], expected)


def test_gram_same_for_channels_last_and_symmetric():
    f = torch.randn(2, 5, 7, 9)
    g = gram_matrix(f)
    assert g.shape == (2, 5, 5)
    assert torch.allclose(g, g.transpose(1, 2))
    assert torch.allclose(g, gram_matrix(f.contiguous(memory_format=torch.channels_last)), atol=1e-5)


def test_gram_independent_of_picture_size():
    tile = torch.randn(1, 4, 5, 5)
    assert torch.allclose(gram_matrix(tile), gram_matrix(tile.repeat(1, 1, 3, 2)), atol=1e-5)


def test_tv_of_constant_picture_is_zero_and_positive_for_noise():
    assert tv_loss(torch.full((1, 3, 16, 16), 0.3)).item() == 0.0
    assert tv_loss(torch.rand(1, 3, 16, 16)).item() > 0.05


def test_content_and_style_losses_zero_at_target_and_relative():
    f = torch.rand(1, 8, 6, 6)
    assert content_loss(f, f).item() == 0.0
    assert style_loss(gram_matrix(f), gram_matrix(f)).item() == 0.0
    # relative: scaling both sides leaves the loss unchanged
    g = torch.rand(1, 8, 6, 6)
    assert torch.isclose(content_loss(3 * g, 3 * f), content_loss(g, f))
    assert torch.isclose(content_distance(2 * f, f), torch.tensor(1.0))
    assert torch.isclose(style_distance(gram_matrix(f) * 0, gram_matrix(f)), torch.tensor(1.0))


def test_gram_gradient_matches_autograd_of_the_plain_formula():
    f = torch.randn(2, 4, 5, 6, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(gram_matrix, (f,))
    target = torch.randn(2, 4, 4, dtype=torch.float64)
    (style_loss(gram_matrix(f), target)).backward()
    custom = f.grad.clone()
    f.grad = None
    flat = f.reshape(2, 4, 30)
    plain = flat @ flat.transpose(1, 2) / 30
    style_loss(plain, target).backward()
    assert torch.allclose(custom, f.grad)

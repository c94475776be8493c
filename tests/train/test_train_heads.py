from __future__ import annotations

import numpy as np
import pytest
import torch

from gnc.train.heads import (
    ClassMeanHead,
    FixedCodeHead,
    LinearHead,
    NormalizedHead,
    cmf_update,
)


def _unit_np(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def test_cmf_update_matches_hand_computation() -> None:
    rng = np.random.default_rng(3)
    K, d, beta = 5, 4, 0.3
    W = _unit_np(rng.standard_normal((K, d)))
    H = rng.standard_normal((7, d))
    y = np.array([0, 2, 2, 4, 0, 0, 2])
    # Hand computation, class by class, with the brief's formula.
    expected = W.copy()
    for k in range(K):
        members = H[y == k]
        if len(members) == 0:
            continue
        s = _unit_np(members).sum(axis=0)
        expected[k] = _unit_np(beta * W[k] + (1 - beta) * s)
    head = ClassMeanHead(K, d, tau=0.5, beta=beta)
    head.weight.copy_(torch.tensor(W, dtype=torch.float32))
    head.train()
    head(torch.tensor(H, dtype=torch.float32), torch.tensor(y))
    np.testing.assert_allclose(head.weight.numpy(), expected, atol=1e-6)
    # classes 1 and 3 were absent: unchanged
    np.testing.assert_array_equal(head.weight.numpy()[[1, 3]], W[[1, 3]].astype(np.float32))


def test_cmf_logits_use_weights_before_update_and_eval_does_not_update() -> None:
    torch.manual_seed(0)
    head = ClassMeanHead(3, 2, tau=0.25, beta=0.5)
    W0 = head.weight.clone()
    h = torch.tensor([[3.0, 4.0]])
    logits = head(h, torch.tensor([1]))
    np.testing.assert_allclose(
        logits.detach().numpy(), (W0 @ torch.tensor([0.6, 0.8])).numpy()[None] / 0.25, atol=1e-6
    )
    assert not torch.equal(head.weight, W0)
    head.eval()
    W1 = head.weight.clone()
    head(h, torch.tensor([1]))
    assert torch.equal(head.weight, W1)


def test_cmf_weight_is_a_buffer_and_gradient_reaches_features() -> None:
    head = ClassMeanHead(4, 3, beta=0.9)
    assert list(head.parameters()) == []
    assert "weight" in dict(head.named_buffers())
    h = torch.randn(6, 3, requires_grad=True)
    loss = torch.nn.functional.cross_entropy(head(h, torch.arange(6) % 4), torch.arange(6) % 4)
    loss.backward()
    assert h.grad is not None and bool(h.grad.abs().sum() > 0)


def test_cmf_update_function_example_values() -> None:
    w = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    out = cmf_update(w, torch.tensor([[0.0, 2.0], [5.0, 5.0]]), torch.tensor([1, 0]), 0.5)
    np.testing.assert_allclose(out[0].numpy(), np.array([1.0, 2.0]) / np.sqrt(5.0), atol=1e-7)
    np.testing.assert_array_equal(out[1].numpy(), [0.0, 1.0])


def test_normalized_head_logits_are_cosines_over_tau() -> None:
    rng = np.random.default_rng(0)
    K, d, tau = 6, 3, 1 / 7
    head = NormalizedHead(K, d, tau=tau)
    W = rng.standard_normal((K, d)) * rng.uniform(0.5, 3, size=(K, 1))
    with torch.no_grad():
        head.weight.copy_(torch.tensor(W))
    H = rng.standard_normal((5, d)) * 10
    expected = _unit_np(H) @ _unit_np(W).T / tau
    got = head(torch.tensor(H, dtype=torch.float32)).detach().numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(head.classifier_weights().numpy(), _unit_np(W), atol=1e-6)
    assert [n for n, _ in head.named_parameters()] == ["weight"]


def test_linear_head_is_plain_matrix_product() -> None:
    head = LinearHead(4, 3)
    h = torch.randn(2, 3)
    torch.testing.assert_close(head(h), h @ head.weight.T)
    assert head.classifier_weights().shape == (4, 3)


def test_fixed_code_head_stores_normalized_code_as_buffer() -> None:
    code = torch.tensor([[2.0, 0.0], [0.0, 1.0], [-1.0, -1.0]], dtype=torch.float64)
    head = FixedCodeHead(code, tau=0.5)
    assert list(head.parameters()) == []
    assert "code" in dict(head.named_buffers())
    assert "code" in head.state_dict()
    expected = code / code.norm(dim=1, keepdim=True)
    torch.testing.assert_close(head.classifier_weights().double(), expected, atol=1e-7, rtol=0)
    h = torch.tensor([[0.0, 3.0]])
    torch.testing.assert_close(
        head(h), (torch.tensor([0.0, 1.0]) @ expected.float().T / 0.5)[None], atol=1e-6, rtol=0
    )
    opt_params = [p for p in torch.nn.Sequential(head).parameters()]
    assert opt_params == []


@pytest.mark.parametrize("bad", [0.0, -1.0])
def test_heads_reject_bad_tau(bad: float) -> None:
    with pytest.raises(ValueError, match="tau"):
        NormalizedHead(3, 2, tau=bad)


def test_cmf_rejects_bad_beta() -> None:
    with pytest.raises(ValueError, match="beta"):
        ClassMeanHead(3, 2, beta=1.0)

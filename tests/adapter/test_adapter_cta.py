"""Cross-Task Adapter (Sec. 3.1, Eq. 1-2, Table 6): shapes, exact identity at init, gradient flow."""

from __future__ import annotations

import pytest
import torch

from vidllm_core.errors import ConfigError
from vidllm_core.models.adapter import VARIANTS, CrossTaskAdapter

DIM, HEADS, K = 32, 4, 4


def _tokens(seed: int = 0, frames: int = 6, n: int = 10) -> torch.Tensor:
    return torch.randn(frames, n, DIM, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("variant", VARIANTS)
def test_shapes_and_finite(variant: str) -> None:
    torch.manual_seed(0)
    cta = CrossTaskAdapter(DIM, HEADS, variant=variant, num_bridge_tokens=K)
    geom, lang = cta(_tokens())
    assert geom.shape == lang.shape == (6, 10, DIM)
    assert torch.isfinite(geom).all() and torch.isfinite(lang).all()
    assert cta.num_bridge_tokens == (K if variant == "bridge" else 0)


@pytest.mark.parametrize("variant", VARIANTS)
def test_geometry_stream_is_exact_identity_at_init(variant: str) -> None:
    torch.manual_seed(1)
    cta = CrossTaskAdapter(DIM, HEADS, variant=variant, num_bridge_tokens=K)
    x = _tokens(1) * 3.0 + 0.5
    geom, lang = cta(x)
    assert torch.equal(geom, x)
    # The language stream is neither a copy of the input nor a zero function.
    assert not torch.allclose(lang, x, atol=1e-3)
    assert lang.abs().mean() > 0.1


@pytest.mark.parametrize("variant", VARIANTS)
def test_identity_init_off_changes_geometry(variant: str) -> None:
    torch.manual_seed(2)
    cta = CrossTaskAdapter(DIM, HEADS, variant=variant, num_bridge_tokens=K, identity_init=False)
    x = _tokens(2)
    geom, _ = cta(x)
    assert not torch.allclose(geom, x, atol=1e-4)


@pytest.mark.parametrize("variant", VARIANTS)
def test_gradients_reach_every_parameter(variant: str) -> None:
    torch.manual_seed(3)
    cta = CrossTaskAdapter(DIM, HEADS, variant=variant, num_bridge_tokens=K)
    x = _tokens(3)
    target_geom, target_lang = _tokens(4), _tokens(5)
    opt = torch.optim.SGD(cta.parameters(), lr=0.1)

    def loss() -> torch.Tensor:
        geom, lang = cta(x)
        return ((geom - target_geom) ** 2).mean() + ((lang - target_lang) ** 2).mean()

    # Zero-initialised output layers block gradient to the layers before them on the very first step only.
    opt.zero_grad()
    loss().backward()
    opt.step()
    opt.zero_grad()
    loss().backward()
    names = [name for name, _ in cta.named_parameters()]
    for name, param in cta.named_parameters():
        assert param.grad is not None, f"{name} got no gradient"
        assert param.grad.abs().sum() > 0, f"{name} got a zero gradient"
    expected = {"none": "phi_lang", "concat_sa": "geom_scale", "cross_attn": "geom_from_lang.proj.weight",
                "bridge": "bridge_tokens"}[variant]
    assert any(expected in name for name in names)


def test_bridge_parameter_names() -> None:
    cta = CrossTaskAdapter(DIM, HEADS, variant="bridge", num_bridge_tokens=K)
    prefixes = {name.split(".")[0] for name, _ in cta.named_parameters()}
    for required in ("phi_geom", "phi_lang", "bridge_tokens", "bridge_from_geom", "bridge_from_lang",
                     "geom_from_bridge", "lang_from_bridge"):
        assert required in prefixes
    assert cta.bridge_tokens.shape == (1, K, DIM)


def test_bridge_attention_is_per_frame() -> None:
    # Scope: a frame's outputs depend only on that frame's tokens.
    torch.manual_seed(6)
    cta = CrossTaskAdapter(DIM, HEADS, variant="bridge", num_bridge_tokens=K, identity_init=False)
    x = _tokens(6)
    y = x.clone()
    y[1:] = _tokens(7)[1:]
    g1, l1 = cta(x)
    g2, l2 = cta(y)
    torch.testing.assert_close(g1[0], g2[0])
    torch.testing.assert_close(l1[0], l2[0])


def test_bad_config() -> None:
    with pytest.raises(ConfigError, match="variant"):
        CrossTaskAdapter(DIM, HEADS, variant="bridges")
    with pytest.raises(ConfigError, match="divisible"):
        CrossTaskAdapter(30, 4, variant="bridge")
    with pytest.raises(ConfigError, match="bridge token"):
        CrossTaskAdapter(DIM, HEADS, variant="bridge", num_bridge_tokens=0)

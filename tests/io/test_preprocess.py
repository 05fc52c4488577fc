"""Preprocessing parity with the official VGGT `load_and_preprocess_images` (crop, pad) and the Sec. 4.1 mode."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.numpy import load

from tests.fixtures import PREPROCESS as FIXTURE, read_xz
from vidllm_core.data.preprocess import preprocess_images, preprocess_with_info

NAMES = {"a": "a_74x49_rgb.png", "b": "b_60x90_rgba.png", "c": "c_1200x300_rgb.png", "d": "d_300x1200_rgb.png"}


@pytest.fixture(scope="module")
def reference() -> dict[str, np.ndarray]:
    return load(read_xz(FIXTURE / "outputs_uint8.safetensors.xz"))


def _open(key: str) -> Image.Image:
    with Image.open(FIXTURE / "images" / NAMES[key]) as img:
        img.load()
        return img


def _as_uint8(x: torch.Tensor) -> np.ndarray:
    return (x * 255).round().to(torch.uint8).numpy()


@pytest.mark.parametrize("mode", ["crop", "pad"])
@pytest.mark.parametrize("key", ["a", "b", "c", "d"])
def test_single_image_bit_exact(reference: dict[str, np.ndarray], mode: str, key: str) -> None:
    out = preprocess_images([_open(key)], mode=mode)
    ref = reference[f"{mode}.{key}"]
    assert out.dtype == torch.float32 and tuple(out.shape) == ref.shape
    assert np.array_equal(_as_uint8(out), ref)
    # the official float tensor is exactly u8 / 255
    assert torch.equal(out, torch.from_numpy(ref).float() / 255)


@pytest.mark.parametrize("mode", ["crop", "pad"])
def test_batch_of_mixed_shapes_bit_exact(reference: dict[str, np.ndarray], mode: str) -> None:
    out, infos = preprocess_with_info([_open(k) for k in "abcd"], mode=mode)
    assert np.array_equal(_as_uint8(out), reference[f"{mode}.batch_abcd"])
    assert all((i.width, i.height) == (518, 518) for i in infos)


def test_fixture_shapes_file_agrees(reference: dict[str, np.ndarray]) -> None:
    shapes = json.loads((FIXTURE / "shapes.json").read_text())["shapes"]
    for key, shape in shapes.items():
        assert list(reference[key].shape) == shape


def test_round_half_to_even_case() -> None:
    # 49 * (518/74) / 14 = 24.5 -> Python round gives 24 -> H = 336 (not 350)
    out, (info,) = preprocess_with_info([_open("a")], mode="crop")
    assert out.shape[-2:] == (336, 518) and info.resized_height == 336


def test_uint8_arrays_match_pil_images() -> None:
    img = _open("b")  # RGBA
    from_pil = preprocess_images([img], mode="pad")
    from_array = preprocess_images([np.asarray(img)], mode="pad")
    assert torch.equal(from_pil, from_array)


def test_crop_info_maps_back_to_source() -> None:
    _, (info,) = preprocess_with_info([_open("d")], mode="crop")  # 300x1200 -> 518x2072, rows 777..1294 kept
    assert (info.resized_width, info.resized_height, info.crop_top) == (518, 2072, 777)
    x, y = info.output_to_source(np.array([0.0, 517.0]), np.array([0.0, 517.0]))
    s = 300 / 518
    np.testing.assert_allclose(x, [0.5 * s - 0.5, 517.5 * s - 0.5])
    np.testing.assert_allclose(y, [777.5 * 1200 / 2072 - 0.5, 1294.5 * 1200 / 2072 - 0.5])


def test_intrinsics_to_source_is_consistent_with_pixel_mapping() -> None:
    _, (info,) = preprocess_with_info([_open("b")], mode="pad")  # 60x90 -> 350x518, padded left by 84
    K = np.array([[400.0, 0.0, 259.0], [0.0, 400.0, 259.0], [0.0, 0.0, 1.0]])
    K_src = info.intrinsics_to_source(K)
    # a 3D point projecting to output pixel (u, v) must project to output_to_source(u, v) at the source
    point = np.array([0.3, -0.2, 2.0])
    uv = K @ point
    uv_src = K_src @ point
    x, y = info.output_to_source(uv[0] / uv[2], uv[1] / uv[2])
    np.testing.assert_allclose([uv_src[0] / uv_src[2], uv_src[1] / uv_src[2]], [x, y], atol=1e-9)


def test_short_side_mode_follows_the_paper() -> None:
    frame = np.random.default_rng(0).integers(0, 256, (120, 160, 3), dtype=np.uint8)
    out, (info,) = preprocess_with_info([frame], mode="short_side", target_size=518)
    # short side 120 -> 518, long side round(160 * 518 / 120) = 691 -> centre-cropped to 686 (49 patches)
    assert (info.resized_width, info.resized_height) == (691, 518)
    assert out.shape == (1, 3, 518, 686) and (info.crop_left, info.crop_top) == (2, 0)
    resized = np.asarray(Image.fromarray(frame).resize((691, 518), Image.Resampling.BICUBIC))
    assert np.array_equal(_as_uint8(out)[0].transpose(1, 2, 0), resized[:, 2:688])


@pytest.mark.parametrize("size", [224, 112, 56])
def test_short_side_small_presets_are_patch_multiples(size: int) -> None:
    portrait = np.zeros((300, 170, 3), dtype=np.uint8)
    out = preprocess_images([portrait], mode="short_side", target_size=size)
    h, w = out.shape[-2:]
    assert w == size and h % 14 == 0 and h <= round(300 * size / 170) and h > round(300 * size / 170) - 14


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="mode"):
        preprocess_images([np.zeros((8, 8, 3), np.uint8)], mode="stretch")
    with pytest.raises(ValueError, match="at least one"):
        preprocess_images([], mode="crop")
    with pytest.raises(ValueError, match="uint8"):
        preprocess_images([np.zeros((8, 8, 3), np.float32)], mode="crop")

"""Keras' random affine augmentation in torch: against scipy (Keras 2.2.4's arithmetic, as seed
004 ran it) and against Keras 3's own ``apply_affine_transform``."""

from __future__ import annotations

import math
import os

import numpy as np
import pytest
import scipy.ndimage
import torch

from lrlab.augment import KerasAffine, keras_affine_matrices, warp


def _params(rng: np.random.Generator) -> tuple[float, float, float, float, float]:
    """Seed 004's ranges: rotation 15 degrees, shifts 10% of 28 pixels, zoom 0.9-1.1."""
    theta, tx, ty = rng.uniform(-15, 15), rng.uniform(-2.8, 2.8), rng.uniform(-2.8, 2.8)
    zx, zy = rng.uniform(0.9, 1.1, 2)
    return theta, tx, ty, float(zx), float(zy)


def _ours(image: np.ndarray, params: tuple[float, ...], center_offset: float) -> np.ndarray:
    theta, tx, ty, zx, zy = (torch.tensor([p]) for p in params)
    height, width = image.shape
    matrices = keras_affine_matrices(
        theta, tx, ty, zx, zy, height, width, center_offset=center_offset
    )
    return warp(torch.from_numpy(image)[None, None], matrices)[0, 0].numpy()


def _keras_224(image: np.ndarray, params: tuple[float, ...]) -> np.ndarray:
    """keras_preprocessing 1.0.5 (Keras 2.2.4): R T Z about (h/2 + 0.5, w/2 + 0.5), then
    scipy's affine_transform, order 1, mode nearest."""
    theta, tx, ty, zx, zy = params
    angle = math.radians(theta)
    rotation = np.array(
        [[math.cos(angle), -math.sin(angle), 0], [math.sin(angle), math.cos(angle), 0], [0, 0, 1]]
    )
    shift = np.array([[1, 0, tx], [0, 1, ty], [0, 0, 1.0]])
    zoom = np.diag([zx, zy, 1.0])
    o_x, o_y = image.shape[0] / 2 + 0.5, image.shape[1] / 2 + 0.5
    offset = np.array([[1, 0, o_x], [0, 1, o_y], [0, 0, 1.0]])
    reset = np.array([[1, 0, -o_x], [0, 1, -o_y], [0, 0, 1.0]])
    matrix = offset @ rotation @ shift @ zoom @ reset
    return scipy.ndimage.affine_transform(  # type: ignore[no-any-return]
        image.astype(np.float64), matrix[:2, :2], matrix[:2, 2], order=1, mode="nearest"
    )


def _digit_like(rng: np.random.Generator, size: int = 28) -> np.ndarray:
    """A random image with a bright blob and a dark border, like an MNIST digit."""
    image = rng.random((size, size)).astype(np.float32)
    image[:4] = image[-4:] = 0
    image[:, :4] = image[:, -4:] = 0
    return image


def test_matches_keras_2_2_4_arithmetic_through_scipy() -> None:
    rng = np.random.default_rng(0)
    for _ in range(20):
        image, params = _digit_like(rng), _params(rng)
        assert np.abs(_ours(image, params, 0.5) - _keras_224(image, params)).max() < 1e-5


@pytest.mark.filterwarnings("ignore:Please import `affine_transform`:DeprecationWarning")
def test_matches_keras_3_apply_affine_transform() -> None:
    """Keras 3 (keras_preprocessing >= 1.1) centres at h/2 - 0.5 and swaps rows and columns:
    its (theta, tx, ty, zx, zy) is ours (-theta, ty, tx, zy, zx) with center_offset=-0.5."""
    os.environ.setdefault("KERAS_BACKEND", "torch")
    pytest.importorskip("keras")
    from keras.src.legacy.preprocessing.image import apply_affine_transform

    rng = np.random.default_rng(1)
    for _ in range(20):
        image = _digit_like(rng)
        theta, tx, ty, zx, zy = _params(rng)
        theirs = apply_affine_transform(
            image[:, :, None].astype(np.float64),
            theta=theta,
            tx=tx,
            ty=ty,
            zx=zx,
            zy=zy,
            row_axis=0,
            col_axis=1,
            channel_axis=2,
        )[:, :, 0]
        ours = _ours(image, (-theta, ty, tx, zy, zx), -0.5)
        assert np.abs(ours - theirs).max() < 1e-5


def test_identity_and_edge_extension() -> None:
    x = torch.rand(3, 2, 5, 7)
    one, zero = torch.ones(3), torch.zeros(3)
    identity = keras_affine_matrices(zero, zero, zero, one, one, 5, 7)
    assert torch.allclose(warp(x, identity), x, atol=1e-6)
    far = keras_affine_matrices(zero, 100 * one, zero, one, one, 5, 7)  # 100 rows down
    assert torch.allclose(warp(x, far), x[:, :, -1:, :].expand_as(x), atol=1e-6)


def test_drawn_parameters_stay_in_their_ranges() -> None:
    generator = torch.Generator().manual_seed(0)
    rotations = KerasAffine(rotation=15, zoom=0, width_shift=0, height_shift=0)
    matrices = rotations.matrices(500, 28, 28, generator)
    angles = torch.rad2deg(torch.atan2(matrices[:, 1, 0], matrices[:, 0, 0]))
    assert angles.abs().max() <= 15
    assert angles.min() < -14
    assert angles.max() > 14
    shifts = KerasAffine(rotation=0, zoom=0, width_shift=0.1, height_shift=0.2)
    t = shifts.matrices(500, 28, 30, generator)[:, :2, 2]
    rows, columns = t[:, 0].abs().max(), t[:, 1].abs().max()
    assert 0.19 * 28 < rows <= 0.2 * 28
    assert 0.09 * 30 < columns <= 0.1 * 30
    zooms = KerasAffine(rotation=0, zoom=0.1, width_shift=0, height_shift=0)
    z = zooms.matrices(500, 28, 28, generator)
    diagonal = torch.stack([z[:, 0, 0], z[:, 1, 1]])
    assert diagonal.min() >= 0.9
    assert diagonal.max() <= 1.1
    assert not torch.equal(z[:, 0, 0], z[:, 1, 1])  # zx and zy drawn independently


def test_reproducible_from_the_generator_and_flat_inputs() -> None:
    augment = KerasAffine(shape=(1, 28, 28))
    x = torch.rand(8, 784)
    first = augment(x, torch.Generator().manual_seed(5))
    assert first.shape == (8, 784)
    assert torch.equal(first, augment(x, torch.Generator().manual_seed(5)))
    assert not torch.equal(first, augment(x, torch.Generator().manual_seed(6)))
    images = KerasAffine()(x.view(8, 1, 28, 28), torch.Generator().manual_seed(5))
    assert torch.equal(images.reshape(8, 784), first)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"rotation": -1}, "rotation must be a finite number >= 0, got rotation=-1"),
        ({"zoom": 1.0}, "zoom must be < 1, got zoom=1.0"),
        ({"width_shift": math.nan}, "width_shift must be a finite number >= 0"),
    ],
)
def test_bad_ranges_are_refused(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        KerasAffine(**kwargs)  # type: ignore[arg-type]


def test_flat_inputs_need_a_shape() -> None:
    with pytest.raises(ValueError, match=r"images must be \(N, C, H, W\).*\(4, 784\)"):
        KerasAffine()(torch.rand(4, 784), torch.Generator())

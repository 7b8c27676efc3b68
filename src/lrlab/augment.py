"""Training-batch image augmentations written with torch ops, drawn from a run's generator:
Keras' random affine transform (``ImageDataGenerator``, below) and the standard random crop
with padding and horizontal flip (`random_crop_flip`, `RandomCrop`).

Seed 004's MNIST notebooks (``MNIST/MNIST.ipynb`` cell 14 of yrahul3910/adaptive-lr-dnn) train
on ``ImageDataGenerator(rotation_range=15, zoom_range=0.1, width_shift_range=0.1,
height_shift_range=0.1)``. Keras 2.2.4 ran it through keras_preprocessing 1.0.5
(``keras_preprocessing/image.py``: ``get_random_transform``, ``apply_affine_transform``,
``transform_matrix_offset_center``), per image:

- ``theta ~ U(-rotation, rotation)`` degrees, ``tx ~ U(-height_shift, height_shift) * H``,
  ``ty ~ U(-width_shift, width_shift) * W``, ``zx, zy ~ U(1 - zoom, 1 + zoom)`` independently;
- ``M = R(theta) @ T(tx, ty) @ Z(zx, zy)`` in (row, column) pixel coordinates, moved to the
  centre ``o = (H / 2 + 0.5, W / 2 + 0.5)``: ``C(o) @ M @ C(-o)``;
- output pixel ``p`` takes the input at ``M p`` (``scipy.ndimage.affine_transform``),
  bilinear (``order=1``), the image extended by its edge pixels (``fill_mode="nearest"``).

Here the same matrices sample a grid through ``torch.nn.functional.grid_sample`` (bilinear,
``padding_mode="border"``, ``align_corners=True``: border clamping is scipy's edge
extension at order 1), for the whole batch at once, the parameters drawn from the run's
``torch.Generator``, so a run is reproducible from its seed. No torchvision.

keras_preprocessing 1.1 and Keras 3 moved the centre to ``H / 2 - 0.5`` (the true centre) and
swapped rows and columns (``P M P``), which turns ``(theta, tx, ty, zx, zy)`` into
``(-theta, ty, tx, zy, zx)``: the same distribution of transforms for these symmetric
ranges; ``center_offset=-0.5`` gives that centre (``tests/test_augment.py`` checks both
against scipy and Keras 3).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from lrlab.validate import check_int


def keras_affine_matrices(
    theta: Tensor,
    tx: Tensor,
    ty: Tensor,
    zx: Tensor,
    zy: Tensor,
    height: int,
    width: int,
    *,
    center_offset: float = 0.5,
) -> Tensor:
    """Keras' ``(N, 3, 3)`` sampling matrices (output pixel -> input pixel, rows first) for
    per-image rotations ``theta`` (degrees), shifts ``tx`` (rows) and ``ty`` (columns, pixels)
    and zooms ``zx``, ``zy``, about ``(height / 2 + center_offset, width / 2 +
    center_offset)``; float64.

    >>> one, zero = torch.ones(1), torch.zeros(1)
    >>> keras_affine_matrices(zero, 2 * one, -one, one, one, 28, 28)[0].tolist()
    [[1.0, -0.0, 2.0], [0.0, 1.0, -1.0], [0.0, 0.0, 1.0]]
    >>> m = keras_affine_matrices(90 * one, zero, zero, one, one, 28, 28)[0]  # about (14.5, 14.5)
    >>> [round(v, 6) + 0.0 for v in m[:2].flatten().tolist()]
    [0.0, -1.0, 29.0, 1.0, 0.0, 0.0]
    """
    angle = torch.deg2rad(theta.double())
    cos, sin = torch.cos(angle), torch.sin(angle)
    zx, zy, tx, ty = zx.double(), zy.double(), tx.double(), ty.double()
    n = angle.shape[0]
    matrices = torch.zeros(n, 3, 3, dtype=torch.float64, device=angle.device)
    # R(theta) @ T(tx, ty) @ Z(zx, zy), multiplied out.
    matrices[:, 0, 0] = cos * zx
    matrices[:, 0, 1] = -sin * zy
    matrices[:, 0, 2] = cos * tx - sin * ty
    matrices[:, 1, 0] = sin * zx
    matrices[:, 1, 1] = cos * zy
    matrices[:, 1, 2] = sin * tx + cos * ty
    matrices[:, 2, 2] = 1.0
    center = torch.tensor(
        [height / 2 + center_offset, width / 2 + center_offset],
        dtype=torch.float64,
        device=angle.device,
    )
    # C(o) @ M @ C(-o): the translation becomes t + o - A o.
    linear = matrices[:, :2, :2]
    matrices[:, :2, 2] += center - linear @ center
    return matrices


def warp(images: Tensor, matrices: Tensor) -> Tensor:
    """Resample ``images`` ``(N, C, H, W)``: output pixel ``(r, c)`` is the input at
    ``matrices[n] @ (r, c, 1)``, bilinear, edge pixels extended beyond the border (scipy's
    ``affine_transform(order=1, mode="nearest")``).

    >>> x = torch.arange(9.0).reshape(1, 1, 3, 3)
    >>> shift = torch.tensor([[[1.0, 0, 1], [0, 1, 0], [0, 0, 1]]])  # read one row down
    >>> warp(x, shift)[0, 0]
    tensor([[3., 4., 5.],
            [6., 7., 8.],
            [6., 7., 8.]])
    """
    n, _, height, width = images.shape
    rows = torch.arange(height, dtype=torch.float64, device=images.device)
    cols = torch.arange(width, dtype=torch.float64, device=images.device)
    grid_r, grid_c = torch.meshgrid(rows, cols, indexing="ij")
    points = torch.stack([grid_r, grid_c, torch.ones_like(grid_r)], dim=-1).reshape(-1, 3)
    source = points @ matrices.to(images.device, torch.float64).transpose(1, 2)  # (N, HW, 3)
    # grid_sample wants (x, y) = (column, row), each scaled to [-1, 1] over the pixel centres.
    x = 2 * source[..., 1] / max(width - 1, 1) - 1
    y = 2 * source[..., 0] / max(height - 1, 1) - 1
    grid = torch.stack([x, y], dim=-1).reshape(n, height, width, 2).to(images.dtype)
    return torch.nn.functional.grid_sample(
        images, grid, mode="bilinear", padding_mode="border", align_corners=True
    )


@dataclass(frozen=True)
class KerasAffine:
    """A random affine augmentation, Keras' ``ImageDataGenerator`` way (see the module):
    ``augment(x, generator)`` transforms every image of a training batch independently.

    ``rotation`` is ``rotation_range`` (degrees), ``zoom`` ``zoom_range`` (``[1 - zoom, 1 +
    zoom]``), ``width_shift`` / ``height_shift`` the shift ranges as fractions of the image
    size. Images come as ``(N, C, H, W)``, or flat ``(N, C * H * W)`` when ``shape`` gives
    ``(C, H, W)`` (they are returned flat). Five uniforms per image are drawn from
    ``generator`` (on the CPU), in one call. Seed 004's setting is the default.

    >>> augment = KerasAffine(shape=(1, 28, 28))
    >>> x = torch.rand(4, 784)
    >>> a = augment(x, torch.Generator().manual_seed(0))
    >>> b = augment(x, torch.Generator().manual_seed(0))
    >>> a.shape, bool(torch.equal(a, b))
    (torch.Size([4, 784]), True)
    """

    rotation: float = 15.0
    zoom: float = 0.1
    width_shift: float = 0.1
    height_shift: float = 0.1
    shape: tuple[int, int, int] | None = None
    center_offset: float = 0.5

    def __post_init__(self) -> None:
        for name in ("rotation", "zoom", "width_shift", "height_shift"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
                raise ValueError(
                    f"KerasAffine: {name} must be a finite number >= 0, got {name}={value!r}"
                )
        if self.zoom >= 1:
            raise ValueError(f"KerasAffine: zoom must be < 1, got zoom={self.zoom!r}")

    def matrices(self, n: int, height: int, width: int, generator: torch.Generator) -> Tensor:
        """The ``(n, 3, 3)`` matrices of ``n`` random transforms (drawn from ``generator``)."""
        u = torch.rand(n, 5, generator=generator, dtype=torch.float64) * 2 - 1  # U(-1, 1)
        theta = u[:, 0] * self.rotation
        tx = u[:, 1] * self.height_shift * height
        ty = u[:, 2] * self.width_shift * width
        zx = 1 + u[:, 3] * self.zoom
        zy = 1 + u[:, 4] * self.zoom
        return keras_affine_matrices(
            theta, tx, ty, zx, zy, height, width, center_offset=self.center_offset
        )

    def __call__(self, x: Tensor, generator: torch.Generator) -> Tensor:
        images = x.view(x.shape[0], *self.shape) if self.shape is not None else x
        if images.dim() != 4:
            raise ValueError(
                f"KerasAffine: images must be (N, C, H, W), or flat with shape=(C, H, W), got "
                f"a tensor of shape {tuple(x.shape)}"
            )
        n, _, height, width = images.shape
        out = warp(images, self.matrices(n, height, width, generator))
        return out.reshape(x.shape) if self.shape is not None else out


def random_crop_flip(
    x: Tensor, generator: torch.Generator, padding: int = 4, *, flip: bool = True
) -> Tensor:
    """The standard CIFAR augmentation (He et al. 2016's "flips and translations"): a random
    ``padding``-pixel translation with zero fill (a crop of the padded image, offsets uniform
    in ``0 .. 2 padding`` per axis) and a horizontal flip with probability 1/2, drawn per
    image from ``generator`` (the offsets, then the flips), vectorised over the batch of
    ``(N, C, H, W)`` images. ``flip=False`` is the translation alone, with the same offsets
    from the same generator (for digits, whose mirror images are other shapes).

    >>> x = torch.arange(16.0).reshape(1, 1, 4, 4)
    >>> a = random_crop_flip(x, torch.Generator().manual_seed(0), 1, flip=False)
    >>> bool(torch.equal(a, random_crop_flip(x, torch.Generator().manual_seed(0), 1, flip=False)))
    True
    """
    n, channels, height, width = x.shape
    padded = torch.nn.functional.pad(x, (padding, padding, padding, padding))
    shifts = torch.randint(0, 2 * padding + 1, (2, n), generator=generator).to(x.device)
    rows = (shifts[0, :, None] + torch.arange(height, device=x.device))[:, None, :, None]
    cols = (shifts[1, :, None] + torch.arange(width, device=x.device))[:, None, None, :]
    batch = torch.arange(n, device=x.device)[:, None, None, None]
    channel = torch.arange(channels, device=x.device)[None, :, None, None]
    cropped = padded[batch, channel, rows, cols]
    if not flip:
        return cropped
    flips = (torch.rand(n, generator=generator) < 0.5).to(x.device)[:, None, None, None]
    return torch.where(flips, cropped.flip(-1), cropped)


@dataclass(frozen=True)
class RandomCrop:
    """`random_crop_flip` as a task's per-model augmentation: ``augment(x, generator)``
    translates (and, with ``flip``, mirrors) every image of a training batch. Images come as
    ``(N, C, H, W)``, or flat ``(N, C * H * W)`` when ``shape`` gives ``(C, H, W)`` (they are
    returned flat).

    >>> augment = RandomCrop(padding=1, shape=(1, 8, 8))
    >>> augment(torch.rand(5, 64), torch.Generator().manual_seed(0)).shape
    torch.Size([5, 64])
    """

    padding: int
    flip: bool = False
    shape: tuple[int, int, int] | None = None

    def __post_init__(self) -> None:
        check_int("RandomCrop", "padding", self.padding, minimum=0)

    def __call__(self, x: Tensor, generator: torch.Generator) -> Tensor:
        images = x.view(x.shape[0], *self.shape) if self.shape is not None else x
        if images.dim() != 4:
            raise ValueError(
                f"RandomCrop: images must be (N, C, H, W), or flat with shape=(C, H, W), got "
                f"a tensor of shape {tuple(x.shape)}"
            )
        out = random_crop_flip(images, generator, self.padding, flip=self.flip)
        return out.reshape(x.shape) if self.shape is not None else out

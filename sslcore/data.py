"""Datasets as in-memory uint8 tensors: the embedded ``shapes``, ``digits``, image folders, uploads.

Everything the lab trains on fits in memory at 32-64 px (CIFAR-10's 50,000 images are 150 MB),
so datasets are plain ``(N, 3, S, S)`` uint8 tensors that the batched augmentation slices
directly on the training device. Decoded folders and generated data are cached on disk.
"""

from __future__ import annotations

import hashlib
import io
import math
import os
import warnings
import zipfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cache
from pathlib import Path, PurePosixPath

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps

from sslcore.paths import atomic_write, cache_dir

DATASETS = ("shapes", "digits", "folder", "cifar10", "stl10")
IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm"}
MAX_UPLOAD_BYTES = 20 * 2**20
MAX_PIXELS = 40_000_000  # decompression-bomb guard: a 20 MB PNG can claim gigapixels
MAX_ZIP_BYTES = 200 * 2**20  # total uncompressed size accepted from one zip
# An image is shown only if each side has at least MIN_SIDE px (check_image_size says why), and the
# ViT pages centre-crop its longer side to at most MAX_ASPECT times the shorter (aspect_crop_box).
MIN_SIDE = 8
MAX_ASPECT = 4


class DataError(ValueError):
    """A data or upload problem, with a message meant for the user."""


@dataclass(frozen=True)
class ImageSet:
    """Square RGB images with optional labels."""

    images: torch.Tensor  # (N, 3, S, S) uint8
    labels: torch.Tensor | None  # (N,) int64
    classes: tuple[str, ...]
    name: str
    masks: torch.Tensor | None = None  # (N, S, S) bool: each image's object, where it is known (shapes)

    def __len__(self) -> int:
        return len(self.images)

    @property
    def image_size(self) -> int:
        return self.images.shape[-1]

    def subset(self, index: torch.Tensor) -> "ImageSet":
        labels = None if self.labels is None else self.labels[index]
        masks = None if self.masks is None else self.masks[index]
        return ImageSet(self.images[index], labels, self.classes, self.name, masks)


def _save_cached(path: Path, data: ImageSet) -> None:
    buf = io.BytesIO()
    torch.save({"images": data.images, "labels": data.labels, "classes": list(data.classes), "name": data.name,
                "masks": data.masks}, buf)
    atomic_write(path, buf.getvalue())


def _load_cached(path: Path) -> ImageSet | None:
    if not path.exists():
        return None
    try:
        d = torch.load(path, weights_only=True)
        return ImageSet(d["images"], d["labels"], tuple(d["classes"]), d["name"], d.get("masks"))
    except Exception:  # noqa: BLE001 - a damaged cache is rebuilt, never trusted
        path.unlink(missing_ok=True)
        return None


# ---------------------------------------------------------------------------------------------
# shapes: the embedded default
# ---------------------------------------------------------------------------------------------
SHAPES_VERSION = 2  # bump whenever the drawing changes, so stale caches are not reused
SHAPE_TILT_DEGREES = 30.0  # objects stand upright up to this tilt; clutter lies at any angle
SHAPE_CLASSES = ("circle", "square", "triangle", "star", "cross", "ring", "hexagon", "crescent", "heart", "diamond")


def _polar_polygon(x: torch.Tensor, y: torch.Tensor, n: int, inner: float) -> torch.Tensor:
    """Inside test for a polygon whose vertices alternate between radius 1 (angle 0, 2pi/n, ...)
    and radius ``inner`` halfway between: a regular n-gon when ``inner = cos(pi/n)``, a star below."""
    r, phi = torch.hypot(x, y), torch.atan2(y, x)
    half = math.pi / n
    phi = ((phi + half) % (2 * half) - half).abs()  # fold onto one edge, angle in [0, pi/n]
    p1, p2 = (1.0, 0.0), (inner * math.cos(half), inner * math.sin(half))
    cross_p = p1[0] * p2[1] - p1[1] * p2[0]
    # Distance along the ray at angle phi to the edge p1-p2.
    edge = phi.cos() * (p2[1] - p1[1]) - phi.sin() * (p2[0] - p1[0])
    return r * edge <= cross_p


def _shape_mask(label: int, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Inside mask of shape ``label`` in its own frame (unit circumradius)."""
    name = SHAPE_CLASSES[label]
    r = torch.hypot(x, y)
    if name == "circle":
        return r <= 0.85
    if name == "square":
        return _polar_polygon(x, y, 4, math.cos(math.pi / 4))
    if name == "triangle":
        return _polar_polygon(x, y, 3, math.cos(math.pi / 3))
    if name == "star":
        return _polar_polygon(x, y, 5, 0.42)
    if name == "cross":
        return ((x.abs() <= 0.28) & (y.abs() <= 0.95)) | ((y.abs() <= 0.28) & (x.abs() <= 0.95))
    if name == "ring":
        return (r <= 0.95) & (r >= 0.55)
    if name == "hexagon":
        return _polar_polygon(x, y, 6, math.cos(math.pi / 6))
    if name == "crescent":
        return (r <= 0.95) & (torch.hypot(x - 0.45, y) > 0.75)
    if name == "heart":
        u, v = x / 0.8, -y / 0.8 + 0.15
        return (u**2 + v**2 - 1) ** 3 - u**2 * v**3 <= 0
    return x.abs() / 0.95 + y.abs() / 0.45 <= 1  # diamond: an elongated rhombus


def _hsv_to_rgb(h: torch.Tensor, s: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """(N,) each in [0, 1] -> (N, 3)."""
    k = torch.stack([(5 + h * 6) % 6, (3 + h * 6) % 6, (1 + h * 6) % 6], 1)
    return v[:, None] - v[:, None] * s[:, None] * (torch.minimum(k, 4 - k).clamp(0, 1))


def _backgrounds(n: int, res: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """(n, 3, res, res) textured backgrounds (a base colour plus a gradient, stripes, checker or
    noise) and whether each is dark."""
    u = torch.linspace(-1, 1, res)
    yy, xx = torch.meshgrid(u, u, indexing="ij")
    dark = torch.rand(n, generator=g) < 0.5
    base = _hsv_to_rgb(torch.rand(n, generator=g), 0.6 * torch.rand(n, generator=g),
                       torch.where(dark, 0.1 + 0.3 * torch.rand(n, generator=g), 0.65 + 0.3 * torch.rand(n, generator=g)))
    kind = torch.randint(0, 4, (n,), generator=g)
    angle = 2 * math.pi * torch.rand(n, generator=g)[:, None, None]
    freq = (2 + 8 * torch.rand(n, generator=g))[:, None, None]
    t = xx * angle.cos() + yy * angle.sin()  # (n, res, res)
    noise = F.interpolate(torch.rand(n, 1, 6, 6, generator=g), size=(res, res), mode="bilinear",
                          align_corners=False)[:, 0] * 2 - 1
    patterns = torch.stack([t, torch.sin(freq * math.pi * t), torch.sign(torch.sin(freq * xx) * torch.sin(freq * yy)),
                            noise], 1)  # (n, 4, res, res)
    pattern = patterns[torch.arange(n), kind]
    amp = (0.03 + 0.06 * torch.rand(n, generator=g))[:, None, None, None]
    return (base[:, :, None, None] + amp * pattern[:, None]).clamp(0, 1), dark


def _render_shapes(labels: torch.Tensor, size: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """(images (N, 3, S, S) uint8, object masks (N, S, S) bool: pixels at least half covered by the object)."""
    n = len(labels)
    ss = 2  # supersampling factor for anti-aliased edges
    res = size * ss
    img, dark_bg = _backgrounds(n, res, g)
    u = torch.linspace(-1 + 1 / res, 1 - 1 / res, res)
    yy, xx = torch.meshgrid(u, u, indexing="ij")

    def place(scale: torch.Tensor, margin: float,
              max_angle: float = math.pi) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        cx = (torch.rand(n, generator=g) * 2 - 1) * (1 - scale * margin)
        cy = (torch.rand(n, generator=g) * 2 - 1) * (1 - scale * margin)
        theta = (torch.rand(n, generator=g) * 2 - 1) * max_angle
        dx, dy = xx[None] - cx[:, None, None], yy[None] - cy[:, None, None]
        c, s = theta.cos()[:, None, None], theta.sin()[:, None, None]
        return (c * dx + s * dy) / scale[:, None, None], (-s * dx + c * dy) / scale[:, None, None], theta

    # Clutter first (the object may cover it): 1-3 small discs and bars in random colours.
    for k in range(3):
        present = torch.rand(n, generator=g) < (1.0 if k == 0 else 0.5)
        x, y, _ = place(0.08 + 0.1 * torch.rand(n, generator=g), 1.0)
        bar = (torch.rand(n, generator=g) < 0.5)[:, None, None]
        mask = torch.where(bar, (x.abs() <= 1.6) & (y.abs() <= 0.35), torch.hypot(x, y) <= 1)
        mask &= present[:, None, None]
        colour = _hsv_to_rgb(torch.rand(n, generator=g), torch.rand(n, generator=g), torch.rand(n, generator=g))
        img = torch.where(mask[:, None], colour[:, :, None, None], img)

    scale = 0.45 + 0.4 * torch.rand(n, generator=g)
    # Objects keep an upright pose up to a tilt, as things in photos do: rotation prediction and
    # relative position have something to learn, and the tilt is still a nuisance for the class.
    x, y, _ = place(scale, 0.9, math.radians(SHAPE_TILT_DEGREES))
    value = torch.where(dark_bg, 0.6 + 0.4 * torch.rand(n, generator=g), 0.05 + 0.35 * torch.rand(n, generator=g))
    colour = _hsv_to_rgb(torch.rand(n, generator=g), 0.4 + 0.6 * torch.rand(n, generator=g), value)
    mask = torch.zeros(n, res, res, dtype=torch.bool)
    for c in labels.unique().tolist():
        idx = (labels == c).nonzero().squeeze(1)
        mask[idx] = _shape_mask(c, x[idx], y[idx])
    img = torch.where(mask[:, None], colour[:, :, None, None], img)
    img = F.avg_pool2d(img, ss)
    return (img * 255).round().clamp(0, 255).to(torch.uint8), F.avg_pool2d(mask[:, None].float(), ss)[:, 0] >= 0.5


def make_shapes(n: int, image_size: int = 32, seed: int = 0) -> ImageSet:
    """The embedded default: ``n`` procedurally drawn images of 10 shapes, balanced, seeded.

    The label is the object's shape; colour, position, scale, tilt (up to ``SHAPE_TILT_DEGREES``
    from upright), background texture and clutter are nuisances drawn independently, so an encoder
    has to learn shape to separate the classes, and the crops and colour jitter of SSL augmentations
    teach exactly that invariance. Colour is independent of everything, so colorization has nothing
    to learn here by design.
    Each image's object mask comes along (``masks``): where attention should land.
    Cached in ``cache_dir()``; the same (n, image_size, seed) always gives the same tensors.
    """
    if n < 1 or image_size < 8:
        raise DataError(f"shapes needs n >= 1 and image_size >= 8, got n={n}, image_size={image_size}")
    path = cache_dir() / f"shapes_v{SHAPES_VERSION}_{n}_{image_size}_{seed}.pt"
    cached = _load_cached(path)
    if cached is not None and cached.masks is not None:  # a cache from before masks is drawn again
        return cached
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % len(SHAPE_CLASSES)
    labels = labels[torch.randperm(n, generator=g)]
    chunk = max(1, 2_000_000 // (image_size * image_size))  # bounds the supersampled canvas memory
    images, masks = zip(*[_render_shapes(labels[i:i + chunk], image_size, g) for i in range(0, n, chunk)])
    data = ImageSet(torch.cat(images), labels, SHAPE_CLASSES, "shapes", torch.cat(masks))
    _save_cached(path, data)
    return data


# ---------------------------------------------------------------------------------------------
# digits, folders, online sets
# ---------------------------------------------------------------------------------------------
def load_digits(image_size: int = 32) -> ImageSet:
    """scikit-learn's bundled 8x8 handwritten digits (1,797 images), upsampled bilinearly, as RGB."""
    from sklearn.datasets import load_digits as sk_digits

    d = sk_digits()
    x = torch.from_numpy(d.images).float()[:, None] / 16  # (N, 1, 8, 8) in [0, 1]
    x = F.interpolate(x, size=(image_size, image_size), mode="bilinear", align_corners=False)
    images = (x.clamp(0, 1) * 255).round().to(torch.uint8).expand(-1, 3, -1, -1).contiguous()
    return ImageSet(images, torch.from_numpy(d.target).long(), tuple(str(i) for i in range(10)), "digits")


def to_rgb(img: Image.Image) -> Image.Image:
    """Any Pillow mode -> RGB: transparency composited on white, 16-bit and float scaled to 8 bits."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        a = np.asarray(img, dtype=np.float64)
        finite = np.isfinite(a)  # float TIFFs may hold NaN or inf: scale by the finite values
        lo, hi = (float(a[finite].min()), float(a[finite].max())) if finite.any() else (0.0, 0.0)
        a = np.nan_to_num(a, nan=lo, posinf=hi, neginf=lo)
        a = (a - lo) / (hi - lo) * 255 if hi > lo else np.zeros_like(a)
        return Image.fromarray(a.astype(np.uint8), "L").convert("RGB")
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return img.convert("RGB")


def image_to_tensor(img: Image.Image, image_size: int) -> torch.Tensor:
    """PIL image -> (3, S, S) uint8: shorter side resized to S (antialiased), centre crop."""
    img = to_rgb(img)
    img = ImageOps.fit(img, (image_size, image_size), method=Image.Resampling.BICUBIC, centering=(0.5, 0.5))
    return torch.from_numpy(np.asarray(img, dtype=np.uint8).copy()).permute(2, 0, 1)


def _decode_file(path: Path, image_size: int) -> torch.Tensor | None:
    try:
        with Image.open(path) as img:
            img.draft("RGB", (image_size * 2, image_size * 2))  # JPEG: decode at a reduced scale
            return image_to_tensor(ImageOps.exif_transpose(img), image_size)
    except (OSError, ValueError, Image.DecompressionBombError):
        return None


def _image_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())


def _decode_all(files: list[Path], image_size: int) -> tuple[torch.Tensor, list[int]]:
    """Decode in threads (Pillow releases the GIL); returns the images and the indices that worked."""
    with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
        decoded = list(pool.map(lambda p: _decode_file(p, image_size), files, chunksize=64))
    ok = [i for i, t in enumerate(decoded) if t is not None]
    if not ok:
        raise DataError("no readable image in the folder")
    return torch.stack([decoded[i] for i in ok]), ok


def load_folder(root: str | Path, image_size: int = 32, max_images: int | None = None, seed: int = 0) -> ImageSet:
    """Images under ``root``: labelled ``root/<class>/**/*`` or flat unlabelled ``root/*``.

    Non-image files are skipped by extension, unreadable images by failing to decode. A seeded,
    class-stratified subset of ``max_images`` is taken before decoding. Cached per folder state.
    """
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DataError(f"{root} is not a folder")
    class_dirs = sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    per_class = {d.name: _image_files(d) for d in class_dirs}
    per_class = {k: v for k, v in per_class.items() if v}
    if per_class:
        classes = tuple(per_class)
        files = [f for c in classes for f in per_class[c]]
        labels = torch.tensor([i for i, c in enumerate(classes) for _ in per_class[c]])
    else:
        files = sorted(p for p in root.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())
        classes, labels = (), None
    if not files:
        raise DataError(f"no image files ({', '.join(sorted(IMAGE_EXTENSIONS))}) in {root}")
    if max_images is not None and max_images < len(files):
        if labels is not None:
            index, _ = stratified_split(labels, max_images / len(files), seed)
        else:
            index = torch.randperm(len(files), generator=torch.Generator().manual_seed(seed))[:max_images].sort().values
        files = [files[i] for i in index.tolist()]
        labels = None if labels is None else labels[index]
    newest = max(f.stat().st_mtime for f in files)
    key = f"{root.resolve()}|{image_size}|{max_images}|{seed}|{len(files)}|{newest}"
    path = cache_dir() / f"folder_{hashlib.sha1(key.encode()).hexdigest()[:16]}.pt"
    cached = _load_cached(path)
    if cached is not None:
        return cached
    images, ok = _decode_all(files, image_size)
    data = ImageSet(images, None if labels is None else labels[ok], classes, root.name)
    _save_cached(path, data)
    return data


def tinyimagenet_val_boxes(root: str | Path) -> dict[str, tuple[str, int, int, int, int]]:
    """``val_annotations.txt`` of Tiny-ImageNet: file name -> (wnid, x0, y0, x1, y1) in 64 px pixels."""
    path = Path(root) / "val_annotations.txt"
    if not path.exists():
        raise DataError(f"{path} not found: is {root} Tiny-ImageNet's val folder?")
    out = {}
    for line in path.read_text().splitlines():
        parts = line.split("\t")
        if len(parts) >= 6:
            out[parts[0]] = (parts[1], *(int(v) for v in parts[2:6]))
    return out


def load_tinyimagenet_val(root: str | Path, image_size: int = 64) -> tuple[ImageSet, list[str]]:
    """Tiny-ImageNet's labelled val split (flat ``images/`` + annotations); also returns file names."""
    boxes = tinyimagenet_val_boxes(root)
    files = [Path(root) / "images" / name for name in sorted(boxes)]
    classes = tuple(sorted({b[0] for b in boxes.values()}))
    index = {c: i for i, c in enumerate(classes)}
    images, ok = _decode_all(files, image_size)
    names = [files[i].name for i in ok]
    labels = torch.tensor([index[boxes[n][0]] for n in names])
    return ImageSet(images, labels, classes, "tinyimagenet-val"), names


def load_online(name: str, root: str | Path, train: bool, image_size: int, download: bool = True) -> ImageSet:
    """CIFAR-10 or STL-10 through torchvision (downloads when online; never called in tests)."""
    import torchvision

    if name == "cifar10":
        ds = torchvision.datasets.CIFAR10(str(root), train=train, download=download)
        images = torch.from_numpy(ds.data).permute(0, 3, 1, 2)
        labels, classes = torch.tensor(ds.targets), tuple(ds.classes)
    elif name == "stl10":
        ds = torchvision.datasets.STL10(str(root), split="train" if train else "test", download=download)
        images, labels, classes = torch.from_numpy(ds.data), torch.from_numpy(ds.labels).long(), tuple(ds.classes)
    else:
        raise DataError(f"no online dataset {name!r}; choose cifar10 or stl10")
    return ImageSet(resize_images(images, image_size).contiguous(), labels, classes, name)


def resize_images(images: torch.Tensor, size: int) -> torch.Tensor:
    """(N, 3, H, W) uint8 -> (N, 3, size, size) uint8, bilinear (antialiased when shrinking); as is when already that size."""
    if images.shape[-2:] == (size, size):
        return images
    return F.interpolate(images.float(), size=(size, size), mode="bilinear", antialias=True,
                         align_corners=False).round().clamp(0, 255).to(torch.uint8)


def stratified_split(labels: torch.Tensor, fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Seeded split keeping class proportions: (chosen, rest) sorted indices, at least one per class."""
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    g = torch.Generator().manual_seed(seed)
    chosen = []
    for c in labels.unique().tolist():
        idx = (labels == c).nonzero().squeeze(1)
        k = max(1, round(fraction * len(idx)))
        chosen.append(idx[torch.randperm(len(idx), generator=g)[:k]])
    chosen_idx = torch.cat(chosen).sort().values
    rest = torch.ones(len(labels), dtype=torch.bool)
    rest[chosen_idx] = False
    return chosen_idx, rest.nonzero().squeeze(1)


def load_split(name: str, split: str, image_size: int = 32, data_dir: str | Path | None = None, seed: int = 0,
               n: int | None = None) -> ImageSet:
    """The ``train`` or ``test`` split of a dataset, as the runner and the CLI use it.

    ``folder``: ``data_dir/train`` and ``data_dir/test`` (or ``val``) when present, else a seeded
    stratified 80/20 split of the folder. ``n`` caps the number of images.
    """
    if split not in ("train", "test"):
        raise DataError(f"split must be train or test, got {split!r}")
    if name == "shapes":
        return make_shapes(n or (10_000 if split == "train" else 2_000), image_size,
                           seed if split == "train" else seed + 1_000_003)
    if name in ("digits", "folder"):
        if name == "digits":
            data = load_digits(image_size)
        else:
            if data_dir is None:
                raise DataError("the folder dataset needs a data directory (--data-dir)")
            root = Path(data_dir).expanduser()
            sub = root / split if (root / split).is_dir() else root / "val" if split == "test" and (root / "val").is_dir() else None
            if sub is not None:
                data = load_folder(sub, image_size, max_images=n, seed=seed)
                return data
            data = load_folder(root, image_size, seed=seed)
        if data.labels is None:
            split_idx = torch.randperm(len(data), generator=torch.Generator().manual_seed(seed))
            cut = int(0.8 * len(data))
            index = split_idx[:cut] if split == "train" else split_idx[cut:]
        else:
            train_idx, test_idx = stratified_split(data.labels, 0.8, seed)
            index = train_idx if split == "train" else test_idx
        data = data.subset(index)
    elif name in ("cifar10", "stl10"):
        data = load_online(name, cache_dir() / "online", split == "train", image_size)
    else:
        raise DataError(f"unknown dataset {name!r}; choose from {', '.join(DATASETS)}")
    if n is not None and n < len(data):
        data = data.subset(torch.randperm(len(data), generator=torch.Generator().manual_seed(seed))[:n])
    return data


# ---------------------------------------------------------------------------------------------
# gallery and uploads
# ---------------------------------------------------------------------------------------------
@cache
def gallery() -> dict[str, Image.Image]:
    """Photos that scikit-image ships inside its package (no download), as RGB."""
    from skimage import data as skdata

    out = {}
    for name in ("astronaut", "coffee", "chelsea", "rocket", "camera", "cat", "immunohistochemistry", "retina"):
        loader = getattr(skdata, name, None)
        if loader is None:
            continue
        try:
            arr = np.asarray(loader())
        except Exception:  # noqa: BLE001 - an image that needs a download is simply not offered
            continue
        out[name] = Image.fromarray(arr).convert("RGB")
    return out


def check_image_size(width: int, height: int, name: str = "This image") -> None:
    """Refuse an image with a side under ``MIN_SIDE`` px, in one sentence saying what size is needed.

    The one place of this rule: :func:`open_image` applies it to every upload, and the viewers
    that take a picture (:func:`sslcore.viz.attention.resize_longer_side`,
    :func:`sslcore.viz.mae.prepare_image`) apply it to what they are given. Why 8 px: the lab's
    ViTs cut their training image into an 8x8 grid of patches and the shipped checkpoints use
    8 px patches, so a side shorter than that holds less than one patch of real pixels: whatever a
    page would show of it (attention maps, reconstructions, augmented views) is the interpolation
    of a few pixels. 8 px is also the native size of the ``digits`` set, the smallest images the
    lab itself uses.

    Raises:
        DataError: e.g. "This image is 4000x1 px: each side must be at least 8 px, one patch of a
            ViT with 8 px patches".
    """
    if min(width, height) < MIN_SIDE:
        raise DataError(f"{name} is {width}x{height} px: each side must be at least {MIN_SIDE} px, "
                        f"one patch of a ViT with {MIN_SIDE} px patches")


def aspect_crop_box(width: int, height: int, max_aspect: float = MAX_ASPECT) -> tuple[int, int, int, int]:
    """The centred (left, top, right, bottom) box of a ``width`` x ``height`` image whose longer side
    is at most ``max_aspect`` times its shorter: the whole image when it already is.

    The ViT pages crop to it before resizing: a 20000x8 px panorama resized whole would become a
    strip thinner than one patch (attention: longer side fixed) or gigabytes of pixels (MAE:
    shorter side fixed).
    """
    limit = int(max_aspect * min(width, height))
    w, h = min(width, limit), min(height, limit)
    left, top = (width - w) // 2, (height - h) // 2
    return left, top, left + w, top + h


def open_image(data: bytes, filename: str = "upload") -> Image.Image:
    """A validated upload as an RGB image, EXIF orientation applied.

    Raises:
        DataError: empty, larger than ``MAX_UPLOAD_BYTES``, not an image, truncated or corrupt,
            more than ``MAX_PIXELS`` pixels (a decompression bomb), or a side under ``MIN_SIDE``
            px (:func:`check_image_size`).
    """
    if not data:
        raise DataError(f"{filename} is empty")
    if len(data) > MAX_UPLOAD_BYTES:
        raise DataError(f"{filename} is {len(data) / 2**20:.1f} MB; the limit is {MAX_UPLOAD_BYTES / 2**20:.0f} MB")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
            w, h = img.size
            if w * h > MAX_PIXELS:
                raise DataError(f"{filename} is {w}x{h} pixels; the limit is {MAX_PIXELS / 1e6:.0f} megapixels")
            img.seek(0)  # animated images: the first frame
            img.load()
    except DataError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise DataError(f"{filename} declares too many pixels to decode safely") from e
    except Image.UnidentifiedImageError as e:
        raise DataError(f"{filename} is not an image Pillow can read") from e
    except (OSError, ValueError, SyntaxError, EOFError) as e:
        raise DataError(f"{filename} is damaged or truncated ({e})") from e
    img = ImageOps.exif_transpose(img)
    check_image_size(*img.size, name=filename)  # the size as shown, after the EXIF rotation
    return to_rgb(img)


def open_zip(data: bytes, max_files: int = 5000) -> tuple[list[tuple[str, Image.Image]], list[str]]:
    """Images in a zip of a folder: ([(relative path, RGB image)], [why each other member was skipped]).

    Members with absolute paths or ``..`` are refused; the total uncompressed size is capped at
    ``MAX_ZIP_BYTES`` before anything is extracted (zip bombs).
    """
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as e:
        raise DataError("the upload is not a readable zip file") from e
    members = [m for m in archive.infolist() if not m.is_dir()]
    if sum(m.file_size for m in members) > MAX_ZIP_BYTES:
        raise DataError(f"the zip expands to more than {MAX_ZIP_BYTES / 2**20:.0f} MB")
    images, skipped = [], []
    for m in members:
        path = PurePosixPath(m.filename)
        if path.is_absolute() or ".." in path.parts:
            skipped.append(f"{m.filename}: path leaves the folder, refused")
        elif path.name.startswith(".") or "__MACOSX" in path.parts:
            skipped.append(f"{m.filename}: hidden or system file")
        elif path.suffix.lower() not in IMAGE_EXTENSIONS:
            skipped.append(f"{m.filename}: not an image file")
        elif len(images) >= max_files:
            skipped.append(f"{m.filename}: more than {max_files} images")
        else:
            try:
                images.append((str(path), open_image(archive.read(m), path.name)))
            except DataError as e:
                skipped.append(str(e))
    if not images:
        raise DataError("the zip holds no readable image" + (f" ({skipped[0]})" if skipped else ""))
    return images, skipped

import io
import os
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import REAL_DATA
from sslcore import data
from sslcore.data import (MIN_SIDE, DataError, ImageSet, aspect_crop_box, check_image_size, gallery, image_to_tensor,
                          load_digits, load_folder, load_split, make_shapes, open_image, open_zip, stratified_split)


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("SSLCORE_HOME", str(tmp_path / "home"))


def png_bytes(img: Image.Image, fmt: str = "PNG", **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def test_shapes_deterministic_balanced_and_cached():
    tic = time.perf_counter()
    a = make_shapes(500, 32, seed=3)
    first = time.perf_counter() - tic
    assert a.images.shape == (500, 3, 32, 32) and a.images.dtype == torch.uint8
    assert torch.bincount(a.labels).tolist() == [50] * 10 and len(a.classes) == 10
    tic = time.perf_counter()
    b = make_shapes(500, 32, seed=3)
    assert time.perf_counter() - tic < first  # the second call reads the cache
    assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)
    assert not torch.equal(a.images, make_shapes(500, 32, seed=4).images)


def test_shapes_come_with_their_object_masks():
    d = make_shapes(300, 32, seed=3)
    assert d.masks.shape == (300, 32, 32) and d.masks.dtype == torch.bool
    area = d.masks.float().mean((1, 2))
    assert area.min() > 0.02 and area.max() < 0.8, (area.min(), area.max())
    # The object is drawn last in one flat colour: inside its mask, less the anti-aliased edge, the pixels
    # have that colour (all but a few next to a shape's hole), so the mask is where the object is.
    interior = -torch.nn.functional.max_pool2d(-d.masks[:, None].float(), 3, 1, 1)[:, 0] > 0.5
    for image, inside in zip(d.images[:50], interior[:50]):
        colours, counts = image[:, inside].T.unique(dim=0, return_counts=True)
        assert counts.max() >= 0.97 * counts.sum() and counts.sum() >= 20, (colours, counts)
    # The masks survive the cache and a subset.
    again = make_shapes(300, 32, seed=3)
    assert torch.equal(again.masks, d.masks)
    assert torch.equal(d.subset(torch.tensor([5, 7])).masks, d.masks[[5, 7]])


def test_shapes_class_is_not_colour():
    # A colour-only classifier (mean RGB, nearest class centroid) must do badly: colour is a nuisance.
    d = make_shapes(2000, 32)
    mean_rgb = d.images.float().mean((2, 3))
    centroids = torch.stack([mean_rgb[d.labels == c].mean(0) for c in range(10)])
    pred = torch.cdist(mean_rgb, centroids).argmin(1)
    assert (pred == d.labels).float().mean() < 0.2


def test_shapes_at_64px_and_speed():
    tic = time.perf_counter()
    d = make_shapes(10_000, 32, seed=11)
    print(f"shapes: 10k images at 32 px in {time.perf_counter() - tic:.1f} s")
    assert time.perf_counter() - tic < 30
    assert make_shapes(20, 64).images.shape == (20, 3, 64, 64)
    assert len(d) == 10_000


def test_digits():
    d = load_digits(32)
    assert d.images.shape == (1797, 3, 32, 32) and set(d.labels.tolist()) == set(range(10))
    assert torch.equal(d.images[:, 0], d.images[:, 1])


def write(path: Path, img: Image.Image, fmt: str = "PNG") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, fmt)


def test_folder_labelled_nested_modes_and_junk(tmp_path):
    root = tmp_path / "set"
    red_rgba = Image.new("RGBA", (10, 10), (255, 0, 0, 255))
    write(root / "cats" / "a.png", red_rgba)
    write(root / "cats" / "deep" / "b.png", Image.new("L", (12, 12), 128))
    write(root / "dogs" / "c.jpg", Image.new("CMYK", (9, 9), (0, 255, 255, 0)), "JPEG")
    write(root / "dogs" / "d.png", Image.fromarray(np.full((8, 8), 65535, dtype=np.uint16)))
    write(root / "dogs" / "e.png", Image.new("P", (8, 8), 3))
    (root / "dogs" / "notes.txt").write_text("not an image")
    (root / "dogs" / ".DS_Store").write_bytes(b"\0\1")
    (root / "dogs" / "broken.jpg").write_bytes(b"\xff\xd8\xff garbage")
    d = load_folder(root, 16)
    assert d.classes == ("cats", "dogs")
    assert d.labels.tolist() == [0, 0, 1, 1, 1]  # the broken jpg is skipped
    assert d.images.shape == (5, 3, 16, 16)
    assert d.images[0, :, 8, 8].tolist() == [255, 0, 0]
    assert d.images[1, :, 8, 8].tolist() == [128, 128, 128]


def test_folder_flat_and_transparent_on_white(tmp_path):
    write(tmp_path / "x.png", Image.new("RGBA", (8, 8), (255, 0, 0, 0)))
    write(tmp_path / "y.png", Image.new("LA", (8, 8), (0, 255)))
    d = load_folder(tmp_path, 8)
    assert d.labels is None and d.classes == ()
    assert d.images[0, :, 4, 4].tolist() == [255, 255, 255]
    assert d.images[1, :, 4, 4].tolist() == [0, 0, 0]


def test_folder_errors(tmp_path):
    with pytest.raises(DataError, match="not a folder"):
        load_folder(tmp_path / "missing")
    (tmp_path / "readme.txt").write_text("hi")
    with pytest.raises(DataError, match="no image files"):
        load_folder(tmp_path)
    with pytest.raises(DataError, match="data directory"):
        load_split("folder", "train")
    with pytest.raises(DataError, match="unknown dataset"):
        load_split("imagenet", "train")


def test_open_image_rejections(monkeypatch):
    with pytest.raises(DataError, match="empty"):
        open_image(b"", "a.png")
    with pytest.raises(DataError, match="not an image"):
        open_image(os.urandom(1000), "noise.png")
    jpg = png_bytes(Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)), "JPEG")
    with pytest.raises(DataError, match="damaged or truncated"):
        open_image(jpg[: len(jpg) // 2], "cut.jpg")
    monkeypatch.setattr(data, "MAX_UPLOAD_BYTES", 100)
    with pytest.raises(DataError, match="limit is"):
        open_image(jpg, "big.jpg")


def test_open_image_decompression_bomb(monkeypatch):
    monkeypatch.setattr(data, "MAX_PIXELS", 1000)
    with pytest.raises(DataError, match="megapixels"):
        open_image(png_bytes(Image.new("RGB", (100, 100))), "bomb.png")


def test_open_image_exif_orientation_and_modes():
    img = Image.new("RGB", (40, 20), (0, 0, 255))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    rotated = open_image(png_bytes(img, "JPEG", exif=exif.tobytes()), "photo.jpg")
    assert rotated.size == (20, 40) and rotated.mode == "RGB"
    assert open_image(png_bytes(Image.new("I;16", (8, 8))), "deep.png").mode == "RGB"
    assert open_image(png_bytes(Image.new("1", (8, 8))), "bw.png").mode == "RGB"


def size_message(name: str, w: int, h: int) -> str:
    return f"{name} is {w}x{h} px: each side must be at least 8 px, one patch of a ViT with 8 px patches"


@pytest.mark.parametrize("w,h", [(1, 4000), (4000, 1), (2, 2), (1, 1), (7, 300)])
@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "GIF", "BMP", "WEBP", "TIFF"])
def test_open_image_refuses_a_side_under_min_side(w, h, fmt):
    img = Image.fromarray(np.random.default_rng(0).integers(0, 255, (h, w, 3), dtype=np.uint8))
    name = f"thin.{fmt.lower()}"
    with pytest.raises(DataError) as e:
        open_image(png_bytes(img, fmt), name)
    assert str(e.value) == size_message(name, w, h)
    assert MIN_SIDE == 8


def test_open_image_size_rule_uses_the_displayed_size_and_accepts_min_side():
    exif = Image.Exif()
    exif[0x0112] = 6  # stored 4000x1, shown rotated: 1x4000
    with pytest.raises(DataError) as e:
        open_image(png_bytes(Image.new("RGB", (4000, 1)), "JPEG", exif=exif.tobytes()), "strip.jpg")
    assert str(e.value) == size_message("strip.jpg", 1, 4000)
    small = open_image(png_bytes(Image.new("RGB", (8, 8), (1, 2, 3))), "small.png")
    assert small.size == (8, 8) and small.getpixel((7, 7)) == (1, 2, 3)
    wide = open_image(png_bytes(Image.new("RGB", (20000, 8), (9, 8, 7))), "wide.png")  # decodes: the viewers crop it
    assert wide.size == (20000, 8)
    with pytest.raises(DataError, match="This image is 3x9 px: each side must be at least 8 px"):
        check_image_size(3, 9)
    check_image_size(8, 8)  # the bound itself is accepted


def test_aspect_crop_box_is_the_centred_box_at_most_4_to_1():
    assert aspect_crop_box(20000, 8) == (9984, 0, 10016, 8)
    assert aspect_crop_box(8, 20000) == (0, 9984, 8, 10016)
    assert aspect_crop_box(90, 60) == (0, 0, 90, 60)  # already within 4:1: the whole image
    assert aspect_crop_box(33, 8) == (0, 0, 32, 8)
    assert aspect_crop_box(100, 10, max_aspect=2) == (40, 0, 60, 10)


def test_open_image_odd_modes_decode_to_the_right_pixels():
    p = Image.new("P", (16, 8), 0)
    p.putpalette([0, 0, 0, 200, 10, 10] + [0] * 762)
    p.paste(1, (8, 0, 16, 8))
    got = open_image(png_bytes(p, transparency=0), "pal.png")  # index 0 transparent: composited on white
    assert got.getpixel((0, 0)) == (255, 255, 255) and got.getpixel((15, 7)) == (200, 10, 10)
    got = open_image(png_bytes(p, "GIF", transparency=0), "pal.gif")
    assert got.getpixel((0, 0)) == (255, 255, 255) and got.getpixel((15, 7)) == (200, 10, 10)
    la = Image.merge("LA", [Image.new("L", (8, 8), 40), Image.new("L", (8, 8), 0)])
    la.putpixel((0, 0), (40, 255))
    got = open_image(png_bytes(la), "la.png")
    assert got.getpixel((0, 0)) == (40, 40, 40) and got.getpixel((1, 1)) == (255, 255, 255)
    deep = Image.fromarray(np.arange(64, dtype=np.uint16).reshape(8, 8) * 1000)  # I;16, 0..63000
    got = np.asarray(open_image(png_bytes(deep), "deep.png"))
    assert got[0, 0].tolist() == [0, 0, 0] and got[7, 7].tolist() == [255, 255, 255]
    cmyk = open_image(png_bytes(Image.new("CMYK", (8, 8), (0, 255, 255, 0)), "JPEG"), "cmyk.jpg")
    r, g, b = cmyk.getpixel((4, 4))
    assert r > 240 and g < 15 and b < 15  # full magenta + yellow ink: red
    f = np.linspace(-1, 1, 64, dtype=np.float32).reshape(8, 8)
    f[0, 1], f[0, 2], f[0, 3] = np.nan, np.inf, -np.inf
    got = np.asarray(open_image(png_bytes(Image.fromarray(f), "TIFF"), "float.tiff"))[..., 0]
    assert got[7, 7] == 255 and got[0, 0] == 0  # scaled by the finite values, not all black
    assert got[0, 1] == 0 and got[0, 2] == 255 and got[0, 3] == 0  # NaN and -inf at the minimum, +inf at the maximum
    frames = [Image.new("RGB", (8, 8), c) for c in ((250, 0, 0), (0, 0, 250))]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:], duration=50)
    r, g, b = open_image(buf.getvalue(), "anim.gif").getpixel((4, 4))
    assert r > 200 and b < 50  # the first frame


def test_open_image_corrupt_bytes_are_refused():
    good = png_bytes(Image.new("RGB", (60, 40), (5, 6, 7)))
    with pytest.raises(DataError, match="broken.png is not an image Pillow can read"):
        open_image(good[:40] + b"\x00" * 50 + good[90:], "broken.png")


def zip_bytes(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, payload in members.items():
            z.writestr(name, payload)
    return buf.getvalue()


def test_open_zip():
    ok = png_bytes(Image.new("RGB", (8, 8), (1, 2, 3)))
    images, skipped = open_zip(zip_bytes({"set/cats/a.png": ok, "set/dogs/b.png": ok, "../evil.png": ok,
                                          "set/readme.txt": b"x", "set/bad.png": b"nope"}))
    assert [name for name, _ in images] == ["set/cats/a.png", "set/dogs/b.png"]
    assert any("leaves the folder" in s for s in skipped)
    assert any("not an image file" in s for s in skipped)
    assert any("bad.png" in s for s in skipped)
    _, skipped = open_zip(zip_bytes({"set/a.png": ok, "set/line.png": png_bytes(Image.new("RGB", (4000, 1)))}))
    assert size_message("line.png", 4000, 1) in skipped
    with pytest.raises(DataError, match="no readable image"):
        open_zip(zip_bytes({"a.txt": b"x"}))
    with pytest.raises(DataError, match="not a readable zip"):
        open_zip(b"PK not really")


def test_stratified_split_keeps_proportions_and_is_seeded():
    labels = torch.tensor([0] * 100 + [1] * 50 + [2] * 10)
    chosen, rest = stratified_split(labels, 0.1, seed=0)
    assert torch.bincount(labels[chosen]).tolist() == [10, 5, 1]
    assert len(set(chosen.tolist()) | set(rest.tolist())) == 160 and not set(chosen.tolist()) & set(rest.tolist())
    assert torch.equal(chosen, stratified_split(labels, 0.1, seed=0)[0])
    assert not torch.equal(chosen, stratified_split(labels, 0.1, seed=1)[0])
    one_each, _ = stratified_split(labels, 0.01, seed=0)
    assert torch.bincount(labels[one_each]).tolist() == [1, 1, 1]


def test_splits_are_disjoint_for_shapes_and_digits():
    train, test = load_split("shapes", "train", n=300), load_split("shapes", "test", n=300)
    assert not torch.equal(train.images[:10], test.images[:10])
    dtrain, dtest = load_split("digits", "train"), load_split("digits", "test")
    assert len(dtrain) + len(dtest) == 1797


def test_gallery_and_image_to_tensor():
    photos = gallery()
    assert {"astronaut", "coffee", "chelsea"} <= set(photos)
    t = image_to_tensor(photos["astronaut"], 48)
    assert t.shape == (3, 48, 48) and t.dtype == torch.uint8


def test_imageset_subset():
    s = ImageSet(torch.zeros(4, 3, 2, 2, dtype=torch.uint8), torch.tensor([0, 1, 0, 1]), ("a", "b"), "t")
    sub = s.subset(torch.tensor([1, 3]))
    assert len(sub) == 2 and sub.labels.tolist() == [1, 1] and sub.image_size == 2


@pytest.mark.skipif(not (REAL_DATA / "cifar10" / "train").is_dir(), reason="CIFAR-10 from ../shared/data not extracted")
def test_cifar10_folder():
    d = load_folder(REAL_DATA / "cifar10" / "test", 32, max_images=1000)
    assert len(d) == 1000 and len(d.classes) == 10 and torch.bincount(d.labels).tolist() == [100] * 10


@pytest.mark.skipif(not (REAL_DATA / "tiny-imagenet-200" / "val").is_dir(), reason="Tiny-ImageNet not extracted")
def test_tinyimagenet_val_labels_and_boxes():
    from sslcore.data import tinyimagenet_val_boxes

    root = REAL_DATA / "tiny-imagenet-200" / "val"
    boxes = tinyimagenet_val_boxes(root)
    assert len(boxes) == 10_100
    name, (wnid, x0, y0, x1, y1) = next(iter(boxes.items()))
    assert 0 <= x0 < x1 <= 64 and 0 <= y0 < y1 <= 64 and wnid.startswith("n")

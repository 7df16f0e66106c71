"""The attention and MAE pages in AppTest: every kind of upload ends in panels or a clear message."""

import io
import os
import re

import numpy as np
import pytest
import torch
from PIL import Image
from streamlit.testing.v1 import AppTest

from conftest import open_app
from sslcore import data

PAGES = {"views/attention.py": "att", "views/mae.py": "mae"}


def encoded(img: Image.Image, fmt: str = "PNG", **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def photo(w: int = 90, h: int = 60) -> Image.Image:
    return Image.fromarray(np.random.default_rng(0).integers(0, 255, (h, w, 3), dtype=np.uint8))


@pytest.fixture
def app():
    return open_app


def upload_image(at: AppTest, key: str, name: str, payload: bytes) -> AppTest:
    at.radio(key=f"{key}_image_src").set_value("upload").run()
    at.file_uploader(key=f"{key}_image_upload").upload(name, payload, "image/png")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def jpeg_rotated() -> bytes:
    exif = Image.Exif()
    exif[0x0112] = 6
    return encoded(photo(), "JPEG", exif=exif.tobytes())


GOOD = {"photo.png": encoded(photo()), "photo.jpg": jpeg_rotated(), "photo.webp": encoded(photo(), "WEBP"),
        "photo.bmp": encoded(photo(), "BMP"), "photo.gif": encoded(photo().convert("P"), "GIF"),
        "photo.tiff": encoded(photo(), "TIFF"), "deep.png": encoded(Image.new("I;16", (70, 50), 3000)),
        "bw.png": encoded(Image.new("1", (70, 50), 1)), "rgba.png": encoded(Image.new("RGBA", (70, 50), (9, 9, 9, 0)))}
JPEG = encoded(photo(64, 64), "JPEG")
BAD = {"empty.png": (b"", "is empty"), "noise.png": (os.urandom(1000), "not an image Pillow can read"),
       "cut.jpg": (JPEG[: len(JPEG) // 2], "damaged or truncated")}


def test_attention_page_opens_on_the_shapes_dino_and_a_shapes_image(app):
    """Offline, the first thing a class sees: the DINO trained on shapes, on a shapes image at its own size."""
    at = app("views/attention.py")
    assert not at.exception, [e.value for e in at.exception]
    assert at.radio(key="att_image_src").value == "shapes"
    assert at.select_slider(key="att_size").value == 64
    assert any("shipped dino_shapes_vit_tiny" in c.value for c in at.caption)
    at.radio(key="att_image_src").set_value("gallery").run()  # a photo: twice the training size
    assert at.select_slider(key="att_size").value == 128 and not at.exception


@pytest.mark.parametrize("page", list(PAGES))
def test_good_uploads_show_every_panel(app, page):
    at = app(page)
    key = PAGES[page]
    for name, payload in GOOD.items():
        at = upload_image(at, key, name, payload)
        assert not at.error, (name, [e.value for e in at.error])
        captions = [i.caption for element in at.get("image") for i in element.proto.imgs]
        if page == "views/attention.py":
            assert any(c.startswith("input") for c in captions) and any("principal components" in c for c in captions)
            assert sum(re.match(r"head \d+: ", c) is not None for c in captions) == 3, name  # vit_tiny: 3 heads
        else:
            assert [c.split(" (")[0].split(":")[0] for c in captions] == [
                "original", "masked", "reconstruction", "reconstruction + visible patches"], name
            assert len(at.get("plotly_chart")) == 1  # the per-patch error heatmap
        at.file_uploader(key=f"{key}_image_upload").clear()


@pytest.mark.parametrize("page", list(PAGES))
def test_bad_uploads_get_a_clear_message(app, page, monkeypatch):
    at = app(page)
    key = PAGES[page]
    cases = {name: (payload, message, {}) for name, (payload, message) in BAD.items()}
    cases["bomb.png"] = (encoded(Image.new("RGB", (100, 100))), "megapixels", {"MAX_PIXELS": 1000})
    cases["big.jpg"] = (JPEG, "the limit is", {"MAX_UPLOAD_BYTES": 100})
    for name, (payload, message, limits) in cases.items():
        with monkeypatch.context() as m:
            for limit, value in limits.items():
                m.setattr(data, limit, value)
            at = upload_image(at, key, name, payload)
        assert any(message in e.value for e in at.error), (name, [e.value for e in at.error])
        assert not any(i.caption.startswith(("input", "original")) for el in at.get("image") for i in el.proto.imgs)
        at.file_uploader(key=f"{key}_image_upload").clear()


class WritesAFile:
    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return exec, (f"open({self.path!r}, 'w').write('pwned')",)


@pytest.mark.parametrize("page", list(PAGES))
def test_bad_checkpoints_get_a_clear_message_and_never_run(app, page, tmp_path):
    at = app(page)
    key = PAGES[page]
    marker = tmp_path / "pwned.txt"
    buf = io.BytesIO()
    torch.save({"w": torch.zeros(2), "payload": WritesAFile(marker)}, buf)
    at.radio(key=f"{key}_model_src").set_value("local file").run()
    cases = {"evil.pth": (buf.getvalue(), "never executes code"), "cut.safetensors": (b"\x10\x00\x00", "truncated"),
             "resnet.pth": (torch_bytes({"conv1.weight": torch.zeros(4, 3, 3, 3)}), "holds no ViT")}
    for name, (payload, message) in cases.items():
        at.file_uploader(key=f"{key}_model_file").upload(name, payload)
        at.run()
        assert not at.exception, [e.value for e in at.exception]
        assert any(message in e.value for e in at.error), (name, [e.value for e in at.error])
        at.file_uploader(key=f"{key}_model_file").clear()
    assert not marker.exists()


def torch_bytes(obj) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def test_mae_page_refuses_a_plain_vit(app):
    import timm

    at = app("views/mae.py")
    vit = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=0, img_size=32, patch_size=8, depth=1)
    at.radio(key="mae_model_src").set_value("local file").run()
    at.file_uploader(key="mae_model_file").upload("vit.pth", torch_bytes(vit.state_dict()))
    at.run()
    assert any("cannot reconstruct" in w.value for w in at.warning)


@pytest.mark.parametrize("page,method", [("views/attention.py", "dino"), ("views/mae.py", "mae")])
def test_my_runs_source(app, page, method):
    from dataclasses import asdict

    from sslcore.checkpoint import save_checkpoint
    from sslcore.runs import RunConfig
    from sslcore.runs.build import build_method
    from sslcore.runs import RunStore

    at = app(page)
    key = PAGES[page]
    at.radio(key=f"{key}_model_src").set_value("my runs").run()
    assert any("No finished run" in i.value for i in at.info)
    cfg = RunConfig(method=method, backbone="vit_tiny", image_size=32, steps=1, max_seconds=None)
    store = RunStore()
    run_id = store.create(asdict(cfg))
    save_checkpoint(store.run_dir(run_id) / "checkpoint.safetensors", build_method(cfg, torch.device("cpu")).state_dict(),
                    {"config": asdict(cfg), "summary": {}})
    store.set_status(run_id, "finished")
    at.run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert any(f"run {run_id} ({method}, vit_tiny)" in c.value for c in at.caption)
    captions = [i.caption for el in at.get("image") for i in el.proto.imgs]
    assert any(c.startswith("input" if method == "dino" else "original") for c in captions)


def test_norm_pix_mae_is_shown_normalised_until_ground_truth_statistics_are_asked_for(app):
    from dataclasses import asdict

    from sslcore.checkpoint import save_checkpoint
    from sslcore.runs import RunConfig
    from sslcore.runs.build import build_method
    from sslcore.runs import RunStore

    cfg = RunConfig(method="mae", backbone="vit_tiny", image_size=32, steps=1, max_seconds=None,
                    options={"norm_pix_loss": True})
    store = RunStore()
    run_id = store.create(asdict(cfg))
    save_checkpoint(store.run_dir(run_id) / "checkpoint.safetensors", build_method(cfg, torch.device("cpu")).state_dict(),
                    {"config": asdict(cfg), "summary": {}})
    store.set_status(run_id, "finished")
    at = app("views/mae.py")
    at.radio(key="mae_model_src").set_value("my runs").run()
    captions = [i.caption for el in at.get("image") for i in el.proto.imgs]
    assert "reconstruction (normalised patches)" in captions
    assert not any("ground-truth statistics" in w.value for w in at.warning)
    assert at.metric[0].value == "n/a"  # no pixel PSNR without the hidden patches' statistics
    at.toggle(key="mae_gt").set_value(True).run()
    assert any(w.value.startswith("Uses ground-truth statistics") for w in at.warning)
    assert "reconstruction (pixels)" in [i.caption for el in at.get("image") for i in el.proto.imgs]


THIN = {"line.png": (1, 4000), "row.png": (4000, 1), "tiny.png": (2, 2), "dot.png": (1, 1)}


@pytest.mark.parametrize("page", list(PAGES))
def test_images_under_8_px_are_refused_and_panoramas_are_cropped(app, page):
    at = app(page)
    key = PAGES[page]
    for name, (w, h) in THIN.items():
        at = upload_image(at, key, name, encoded(photo(w, h)))
        assert [e.value for e in at.error] == [
            f"{name} is {w}x{h} px: each side must be at least 8 px, one patch of a ViT with 8 px patches"]
        assert not at.get("image")  # no panel
        at.file_uploader(key=f"{key}_image_upload").clear()
    at = upload_image(at, key, "panorama.png", encoded(photo(20000, 8)))
    assert not at.error, [e.value for e in at.error]
    assert any(c.value.startswith("panorama.png is 20000x8 px, longer than 4:1: the attention and MAE pages use its "
                                  "centre 32x8 px") for c in at.caption)
    captions = [i.caption for el in at.get("image") for i in el.proto.imgs]
    if page == "views/attention.py":
        assert "input 128x32 (centre-cropped to whole patches and to at most 4:1, never squashed)" in captions  # 2x the 64 px checkpoint
    else:
        original = next(el for el in at.get("image") if el.proto.imgs[0].caption == "original")
        assert original.proto.imgs[0].caption == "original" and len(at.get("plotly_chart")) == 1


@pytest.mark.parametrize("page", list(PAGES))
def test_a_data_error_of_the_viewer_is_shown_not_raised(app, page, monkeypatch):
    """The viewers apply the size rule themselves: a gallery photo under a raised MIN_SIDE is refused on the page."""
    at = app(page)
    monkeypatch.setattr(data, "MIN_SIDE", 10_000)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert len(at.error) == 1 and re.fullmatch(r"This image is \d+x\d+ px: each side must be at least 10000 px, "
                                               r"one patch of a ViT with 10000 px patches", at.error[0].value)
    assert not any(i.caption.startswith(("input", "original")) for el in at.get("image") for i in el.proto.imgs)


@pytest.mark.parametrize("page,key", [("views/augmentations.py", "aug"), ("views/pretext.py", "pre")])
def test_square_crop_pages_refuse_thin_images_and_take_panoramas(app, page, key):
    at = app(page)
    at.radio(key=f"{key}_src").set_value("upload").run()
    at.file_uploader(key=f"{key}_upload").upload("row.png", encoded(photo(4000, 1)), "image/png")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert [e.value for e in at.error] == [
        "row.png is 4000x1 px: each side must be at least 8 px, one patch of a ViT with 8 px patches"]
    at.file_uploader(key=f"{key}_upload").clear()
    at.file_uploader(key=f"{key}_upload").upload("panorama.png", encoded(photo(20000, 8)), "image/png")
    at.run()
    assert not at.exception and not at.error, [e.value for e in at.exception] + [e.value for e in at.error]
    assert any("the augmentation and pretext pages its centre square" in c.value for c in at.caption)
    assert len([i for el in at.get("image") for i in el.proto.imgs]) >= 2  # the views were drawn


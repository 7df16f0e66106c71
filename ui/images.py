"""Picking an input image (gallery, upload, dataset sample) and showing image grids."""

from __future__ import annotations

import numpy as np
import streamlit as st
import torch
from PIL import Image

from sslcore.data import (MAX_ASPECT, MAX_UPLOAD_BYTES, MIN_SIDE, DataError, aspect_crop_box, gallery, load_split,
                          open_image)
from sslcore.urlstate import widget_default


@st.cache_resource
def cached_gallery() -> dict[str, Image.Image]:
    return gallery()


@st.cache_data(max_entries=4)
def dataset_sample(name: str, index: int, image_size: int) -> np.ndarray:
    data = load_split(name, "test", image_size, n=200)
    return data.images[index % len(data)].permute(1, 2, 0).numpy()


def pick_image(key: str) -> Image.Image | None:
    """Widgets to choose one image, opening on the source the page's URL schema gives (else the gallery);
    upload problems are shown as an error, never raised."""
    sources = ["gallery", "upload", "shapes", "digits"]
    default = widget_default(f"{key}_src", "gallery")
    source = st.radio("Image", sources, index=sources.index(default), horizontal=True, key=f"{key}_src")
    if source == "gallery":
        photos = cached_gallery()
        return photos[st.selectbox("Photo", list(photos), key=f"{key}_photo")]
    if source == "upload":
        up = st.file_uploader("Upload an image", type=["png", "jpg", "jpeg", "webp", "bmp", "gif", "tif", "tiff"],
                              key=f"{key}_upload", max_upload_size=MAX_UPLOAD_BYTES // 2**20)
        if up is None:
            st.info(f"Choose an image file (at most 20 MB, each side at least {MIN_SIDE} px).")
            return None
        try:
            img = open_image(up.getvalue(), up.name)
        except DataError as e:
            st.error(str(e))
            return None
        left, top, right, bottom = aspect_crop_box(*img.size)
        if (right - left, bottom - top) != img.size:
            st.caption(f"{up.name} is {img.width}x{img.height} px, longer than {MAX_ASPECT}:1: the attention and "
                       f"MAE pages use its centre {right - left}x{bottom - top} px, the augmentation and pretext "
                       "pages its centre square.")
        return img
    index = st.number_input("Sample", 0, 199, 0, key=f"{key}_idx")
    return Image.fromarray(dataset_sample(source, int(index), 64))


def to_uint8(images: torch.Tensor) -> list[np.ndarray]:
    """(N, 3, H, W) floats in [0, 1] -> list of HxWx3 uint8 arrays for st.image."""
    return [(im.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy() for im in images]


def image_grid(images: list[np.ndarray], captions: list[str] | None = None, columns: int = 6, width: int = 110) -> None:
    cols = st.columns(columns)
    for i, img in enumerate(images):
        with cols[i % columns]:
            st.image(img, caption=None if captions is None else captions[i], width=width)

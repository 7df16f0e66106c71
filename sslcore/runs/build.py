"""What a config implies: the device, the training and held-out images, the method, the kNN evaluator."""

from __future__ import annotations

import torch

from sslcore.data import DataError, ImageSet, load_folder, load_split, stratified_split
from sslcore.eval import KNNEvaluator
from sslcore.methods import create_method
from sslcore.methods.base import Method
from sslcore.models import create_backbone, is_vit
from sslcore.runs.config import RunConfig


def resolve_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def load_data(cfg: RunConfig) -> tuple[ImageSet, ImageSet | None]:
    """Training images and the held-out labelled set for kNN (None when there are no labels).

    A folder with an explicit ``eval_dir`` trains on the whole folder and evaluates on ``eval_dir``;
    otherwise each dataset's own train/test split is used.
    """
    if cfg.dataset == "folder" and cfg.eval_dir:
        if cfg.data_dir is None:
            raise DataError("the folder dataset needs a data directory (--data-dir)")
        train = load_folder(cfg.data_dir, cfg.image_size, max_images=cfg.train_size, seed=cfg.seed)
        test = load_folder(cfg.eval_dir, cfg.image_size)
    else:
        train = load_split(cfg.dataset, "train", cfg.image_size, data_dir=cfg.data_dir, seed=cfg.seed,
                           n=cfg.train_size)
        test = load_split(cfg.dataset, "test", cfg.image_size, data_dir=cfg.data_dir, seed=cfg.seed)
    return train, (test if test.labels is not None else None)


def build_method(cfg: RunConfig, device: torch.device) -> Method:
    """The method at its seeded random init, on ``device``."""
    torch.manual_seed(cfg.seed)
    backbone = create_backbone(cfg.backbone, cfg.image_size)
    method = create_method(cfg.method, backbone, cfg.image_size, **cfg.options).to(device)
    if not is_vit(backbone):
        method = method.to(memory_format=torch.channels_last)  # oneDNN/cuDNN's fastest conv layout
    return method


def make_evaluator(cfg: RunConfig, train: ImageSet, test: ImageSet | None) -> KNNEvaluator | None:
    """The weighted kNN of the monitor: a stratified bank of training images against held-out ones."""
    if test is None or train.labels is None:
        return None
    bank_idx, _ = stratified_split(train.labels, min(1.0, cfg.knn_bank / len(train)), cfg.seed)
    test_idx, _ = stratified_split(test.labels, min(1.0, cfg.knn_test / len(test)), cfg.seed)
    bank, held_out = train.subset(bank_idx), test.subset(test_idx)
    return KNNEvaluator(bank.images, bank.labels, held_out.images, held_out.labels, cfg.knn_k, cfg.knn_t)

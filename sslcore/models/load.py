"""Where the visualisation pages get models: shipped checkpoints, the user's runs, local files, hubs.

Every source ends in a :class:`LoadedModel`: a timm ViT (``kind="vit"``, what attention maps read)
or an MAE with its decoder (``kind="mae"``, what reconstructions need).

Files are never unpickled: safetensors is plain tensors, and ``.pth``/``.pt`` go through
``torch.load(weights_only=True)``, which refuses any pickle that would construct objects or call
code. A checkpoint whose keys match no ViT gets an error naming what was found.
"""

from __future__ import annotations

import argparse
import copy
import io
import json
import os
import pickle
import re
import threading
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

import timm
import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors_bytes
from torch import Tensor, nn

from sslcore.checkpoint import CheckpointError, safetensors_metadata
from sslcore.models.backbones import create_backbone, is_vit

if TYPE_CHECKING:
    from sslcore.methods.mae import MAEReconstruction

SHIPPED_FORMAT = "sslcore-shipped-v1"
MAX_SHIPPED_BYTES = 20 * 2**20  # a shipped checkpoint lives in the repository
MAX_CHECKPOINT_BYTES = 512 * 2**20  # a local file: ViT-B/8 in fp32 is 350 MB
# What the lab ships (assets/README.md has the commands); random init of the same architecture
# stands in until the files exist.
DEFAULT_ARCHITECTURES: dict[str, dict[str, Any]] = {
    "vit": {"method": "dino", "backbone": "vit_tiny", "image_size": 64, "options": {}},
    "mae": {"method": "mae", "backbone": "vit_tiny", "image_size": 64, "options": {}},
}
TIMM_DINO = ("vit_small_patch16_224.dino", "vit_small_patch8_224.dino", "vit_base_patch16_224.dino",
             "vit_base_patch8_224.dino", "vit_small_patch14_dinov2.lvd142m", "vit_small_patch14_reg4_dinov2.lvd142m")
TIMM_MAE_ENCODERS = ("vit_base_patch16_224.mae", "vit_large_patch16_224.mae", "vit_huge_patch14_224.mae")
HF_MAE = ("facebook/vit-mae-base", "facebook/vit-mae-large", "facebook/vit-mae-huge")
ENCODER_ONLY_NOTE = ("timm's `.mae` weights are the MAE encoder only (the official pretrain release, without "
                     "its decoder), so they cannot reconstruct: use them on the attention page, or an HF "
                     "`facebook/vit-mae-*` model here.")
# Where a ViT may sit inside a checkpoint, most wanted first: DINO visualises its teacher.
_ROOT_PREFERENCE = ("teacher", "", "backbone", "encoder", "model")


@dataclass(frozen=True)
class LoadedModel:
    """A model ready to look inside, and what the user should know about it.

    Attributes:
        model: a timm ``VisionTransformer`` (``kind="vit"``) or an MAE with its decoder (``kind="mae"``),
            in eval mode on the CPU.
        kind: ``"vit"`` or ``"mae"``.
        source: where it came from, for captions.
        notes: caveats to show beside the panels (random weights, guessed head count, ...).
        config: its architecture (``kind``, ``method``, ``backbone``, ``image_size``, ``options``; for
            exports also the provenance); empty for foreign files.
        image_size: the image size it was trained at (or its position table's), when known.
    """

    model: nn.Module
    kind: str
    source: str
    notes: tuple[str, ...] = ()
    config: Mapping[str, Any] = field(default_factory=dict)
    image_size: int | None = None

    @property
    def vit(self) -> nn.Module:
        """The ViT to read attention from: the model itself, or an MAE's encoder."""
        vit = self.model if self.kind == "vit" else getattr(self.model, "backbone", None)
        if vit is None or not is_vit(vit):
            raise CheckpointError(f"{self.source} has no timm ViT encoder to read attention from")
        return vit


# ---------------------------------------------------------------------------------------------
# shipped checkpoints (assets/) and models rebuilt from an sslcore config
# ---------------------------------------------------------------------------------------------
def assets_dir() -> Path:
    """``$SSLCORE_ASSETS``, else ``assets/`` beside the ``sslcore`` package (the repository root).

    An editable install (``pip install -e .``) and ``streamlit run app.py`` both resolve it from
    the package location, so the app finds the files offline from any working directory.
    """
    env = os.environ.get("SSLCORE_ASSETS")
    return Path(env).expanduser() if env else Path(__file__).resolve().parents[2] / "assets"


def shipped_names(kind: str | None = None) -> list[str]:
    """Names of the shipped checkpoints (``assets/NAME.json`` + ``NAME.safetensors``), of ``kind`` if given."""
    root = assets_dir()
    names = []
    for path in sorted(root.glob("*.json")) if root.is_dir() else []:
        try:
            config = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if (isinstance(config, dict) and config.get("format") == SHIPPED_FORMAT
                and path.with_suffix(".safetensors").is_file() and kind in (None, config.get("kind"))):
            names.append(path.stem)
    return names


def build_from_config(config: Mapping[str, Any]) -> nn.Module:
    """The untrained model an sslcore export config describes (ViT backbone, or MAE method with decoder)."""
    try:
        backbone = create_backbone(config["backbone"], int(config["image_size"]))
        if config["kind"] == "vit":
            return backbone
        if config["kind"] == "mae":
            from sslcore.methods import create_method

            return create_method(config["method"], backbone, int(config["image_size"]), **config.get("options", {}))
    except KeyError as e:
        raise CheckpointError(f"the checkpoint's config lacks {e}") from e
    except ValueError as e:
        raise CheckpointError(f"the checkpoint's config cannot be built: {e}") from e
    raise CheckpointError(f"unknown model kind {config['kind']!r}; expected vit or mae")


def load_strict(model: nn.Module, state: Mapping[str, Tensor], what: str) -> nn.Module:
    """``model.load_state_dict(state)`` with missing/unexpected keys and shape mismatches named clearly."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    wrong = [f"{k} {tuple(state[k].shape)} (model: {tuple(v.shape)})" for k, v in expected.items()
             if k in state and state[k].shape != v.shape]
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing key(s), e.g. {', '.join(missing[:3])}")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected key(s), e.g. {', '.join(unexpected[:3])}")
    if wrong:
        problems.append(f"{len(wrong)} shape mismatch(es), e.g. {'; '.join(wrong[:3])}")
    if problems:
        raise CheckpointError(f"{what} does not fit the model: " + "; ".join(problems))
    model.load_state_dict({k: v.to(expected[k].dtype) for k, v in state.items()})
    return model.eval()


def model_from_export(state: Mapping[str, Tensor], config: Mapping[str, Any], source: str) -> LoadedModel:
    model = load_strict(build_from_config(config), state, source)
    return LoadedModel(model, config["kind"], source, config=dict(config), image_size=int(config["image_size"]))


def load_shipped(name: str) -> LoadedModel:
    """A shipped checkpoint ``assets/NAME.safetensors``, rebuilt from the JSON config beside it."""
    root = assets_dir()
    if name not in shipped_names():
        raise CheckpointError(f"no shipped checkpoint {name!r} in {root}; available: {shipped_names() or 'none'}")
    config = json.loads((root / f"{name}.json").read_text())
    state, _ = read_checkpoint_bytes((root / f"{name}.safetensors").read_bytes(), f"{name}.safetensors")
    loaded = model_from_export(state, config, f"shipped {name}")
    prov = config.get("provenance", {})
    notes = (f"trained by `{prov['command']}`" if str(prov.get("command", "")).startswith("sslcore") else "",
             prov.get("note", ""))
    return LoadedModel(loaded.model, loaded.kind, loaded.source, tuple(n for n in notes if n), loaded.config,
                       loaded.image_size)


def random_init(kind: str, architecture: Mapping[str, Any] | None = None, seed: int = 0) -> LoadedModel:
    """A random-init model of the shipped architecture of ``kind`` (a baseline, and the stand-in)."""
    arch = {**DEFAULT_ARCHITECTURES[kind], **(architecture or {}), "kind": kind}
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = build_from_config(arch).eval()
    name = f"random-init {arch['backbone']} ({arch['image_size']} px)"
    return LoadedModel(model, kind, name, ("random weights: what the architecture shows before any training",), arch,
                       int(arch["image_size"]))


def random_like(vit: nn.Module, seed: int = 0) -> nn.Module:
    """A copy of the timm ViT ``vit`` with fresh, seeded weights from timm's own init: the random-init
    reference for any loaded ViT, whose architecture may be known only from its tensors."""
    if not is_vit(vit):
        raise CheckpointError(f"random_like needs a timm ViT, got {type(vit).__name__}")
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = copy.deepcopy(vit)
        model.init_weights()
    return model.eval()


def default_model(kind: str) -> LoadedModel:
    """The first shipped checkpoint of ``kind``, or random init of its architecture with a note saying so."""
    names = shipped_names(kind)
    if names:
        return load_shipped(names[0])
    rand = random_init(kind)
    note = (f"No shipped {'DINO ViT' if kind == 'vit' else 'MAE'} checkpoint in {assets_dir()} yet "
            "(assets/README.md has the commands that make it): showing a random-init model of the same architecture.")
    return LoadedModel(rand.model, kind, rand.source, (note,), rand.config, rand.image_size)


# ---------------------------------------------------------------------------------------------
# the user's runs
# ---------------------------------------------------------------------------------------------
def export_part(method_name: str) -> tuple[str, str]:
    """(kind, state-dict prefix) of what a run of ``method_name`` exports and visualises.

    DINO visualises its teacher (Caron et al. 2021 show the teacher's attention); MAE needs the
    whole method (encoder and decoder); other methods with a ViT backbone show that backbone.
    """
    if method_name == "dino":
        return "vit", "teacher_backbone."
    if method_name == "mae":
        return "mae", ""
    return "vit", "backbone."


# ---------------------------------------------------------------------------------------------
# local checkpoint files
# ---------------------------------------------------------------------------------------------
def read_checkpoint_bytes(data: bytes, filename: str) -> tuple[dict[str, Tensor], dict[str, str]]:
    """Tensors and string metadata of a ``.safetensors`` or ``.pth``/``.pt`` file, without running its code.

    Raises:
        CheckpointError: too large, empty, truncated, not a checkpoint, or a pickle that needs code.
    """
    if not data:
        raise CheckpointError(f"{filename} is empty")
    if len(data) > MAX_CHECKPOINT_BYTES:
        raise CheckpointError(f"{filename} is {len(data) / 2**20:.0f} MB; "
                              f"the limit is {MAX_CHECKPOINT_BYTES // 2**20} MB")
    suffix = Path(filename).suffix.lower()
    if suffix == ".safetensors":
        try:
            state = load_safetensors_bytes(data)
            metadata = safetensors_metadata(data)
        except (SafetensorError, ValueError, OverflowError) as e:
            raise CheckpointError(f"{filename} is not a readable safetensors file (truncated or damaged?): {e}") from e
        return state, metadata
    if suffix in (".pth", ".pt", ".bin", ".ckpt"):
        return _torch_load_weights_only(data, filename), {}
    raise CheckpointError(f"{filename}: use a .safetensors, .pth or .pt checkpoint")


def _torch_load_weights_only(data: bytes, filename: str) -> dict[str, Tensor]:
    try:
        # argparse.Namespace holds a training script's arguments (DINO's full checkpoints carry one);
        # rebuilding it sets attributes and runs no code, so it is the one class allowed.
        with torch.serialization.safe_globals([argparse.Namespace]):
            obj = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise CheckpointError(
            f"{filename} refers to Python code or classes that a weights-only load refuses to run; SSL Lab never "
            "executes code from a file. Save a plain state_dict (`torch.save(model.state_dict(), path)`) or a "
            f".safetensors file instead. ({str(e).splitlines()[0][:200]})") from e
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile) as e:
        reason = str(e).splitlines()[0][:200] if str(e) else type(e).__name__
        raise CheckpointError(f"{filename} is truncated or not a PyTorch checkpoint: {reason}") from e
    return unwrap_state_dict(obj, filename)


def unwrap_state_dict(obj: Any, filename: str = "checkpoint") -> dict[str, Tensor]:
    """The tensor dict inside a loaded checkpoint: follows ``teacher``/``state_dict``/``model`` entries.

    A training checkpoint wraps the weights with optimiser state and counters; DINO's holds both
    ``student`` and ``teacher`` (the teacher is the one DINO visualises).
    """
    for _ in range(3):
        if not isinstance(obj, Mapping):
            break
        inner = next((obj[k] for k in ("teacher", "state_dict", "model", "module")
                      if isinstance(obj.get(k), Mapping)), None)
        if inner is None:
            break
        obj = inner
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"{filename} holds a {type(obj).__name__}, not a dict of tensors")
    tensors = {k: v for k, v in obj.items() if isinstance(k, str) and isinstance(v, Tensor)}
    if not tensors:
        raise CheckpointError(f"{filename} holds no tensors (keys: {', '.join(map(str, list(obj)[:5]))})")
    return tensors


def vit_state(state: Mapping[str, Tensor], filename: str = "checkpoint") -> tuple[dict[str, Tensor], str]:
    """The ViT inside ``state`` with its prefix removed, and that prefix.

    ``module.`` (DistributedDataParallel) is dropped everywhere; then the prefix in front of
    ``patch_embed.proj.weight`` decides (``teacher.``, ``backbone.``, ``encoder.``, ``student.``,
    ``teacher_backbone.`` ...), the teacher first when there are several.
    """
    state = {re.sub(r"(^|\.)module\.", r"\1", k): v for k, v in state.items()}
    roots = [k[: -len("patch_embed.proj.weight")] for k in state if k.endswith("patch_embed.proj.weight")]
    if not roots:
        raise CheckpointError(f"{filename} holds no ViT: no `patch_embed.proj.weight` among its keys "
                              f"(first keys: {', '.join(list(state)[:4])})")

    def rank(root: str) -> tuple[int, int]:
        parts = set(re.split(r"[._]", root.rstrip(".")))
        if "student" in parts and "teacher" not in parts:
            return len(_ROOT_PREFERENCE), len(root)
        return min((i for i, p in enumerate(_ROOT_PREFERENCE) if p in parts), default=len(_ROOT_PREFERENCE)), len(root)

    root = min(roots, key=rank)
    return {k[len(root):]: v for k, v in state.items() if k.startswith(root)}, root


def infer_vit_kwargs(state: Mapping[str, Tensor], num_heads: int | None = None) -> tuple[dict[str, Any], list[str]]:
    """timm ``VisionTransformer`` arguments read off the tensors, and notes on what had to be assumed.

    Width, patch size, depth, MLP ratio, tokens, grid and norms are in the shapes; the head count is
    not (``qkv`` is ``(3D, D)`` for any count), so it defaults to a head width of 64 as in
    ViT/DeiT/DINO/MAE, and the note says so.
    """
    try:
        proj = state["patch_embed.proj.weight"]  # (D, C, p, p)
        embed_dim, in_chans, patch = proj.shape[0], proj.shape[1], proj.shape[2]
        depth = 1 + max(int(k.split(".")[1]) for k in state if k.startswith("blocks."))
        mlp_ratio = state["blocks.0.mlp.fc1.weight"].shape[0] / embed_dim
        pos = state["pos_embed"]  # (1, prefix? + gh*gw, D)
    except (KeyError, ValueError, IndexError) as e:
        raise CheckpointError(f"the ViT lacks a tensor timm's VisionTransformer needs: {e}") from e
    notes = []
    class_token = "cls_token" in state
    reg_tokens = state["reg_token"].shape[1] if "reg_token" in state else 0
    n_pos = pos.shape[1]
    grid = round((n_pos - class_token - reg_tokens) ** 0.5)
    no_embed_class = False
    if grid * grid != n_pos - class_token - reg_tokens:
        grid = round(n_pos ** 0.5)
        no_embed_class = True  # the position table covers the patches only (DINOv2 with registers, ...)
        if grid * grid != n_pos:
            raise CheckpointError(f"pos_embed has {n_pos} positions: not a square grid of patches")
    if num_heads is None:
        num_heads = max(1, embed_dim // 64)
        notes.append(f"head count assumed {num_heads} (head width 64): checkpoints do not record it")
    if embed_dim % num_heads:
        raise CheckpointError(f"width {embed_dim} is not divisible by {num_heads} heads")
    fc_norm = "fc_norm.weight" in state
    kwargs = dict(img_size=grid * patch, patch_size=patch, in_chans=in_chans, embed_dim=embed_dim, depth=depth,
                  num_heads=num_heads, mlp_ratio=mlp_ratio, qkv_bias="blocks.0.attn.qkv.bias" in state,
                  qk_norm="blocks.0.attn.q_norm.weight" in state, class_token=class_token, reg_tokens=reg_tokens,
                  no_embed_class=no_embed_class, pre_norm="norm_pre.weight" in state,
                  init_values=1e-5 if "blocks.0.ls1.gamma" in state else None,
                  global_pool="avg" if fc_norm else ("token" if class_token else "avg"), fc_norm=fc_norm,
                  final_norm="norm.weight" in state or fc_norm, num_classes=0, dynamic_img_size=True)
    return kwargs, notes


def vit_from_state_dict(state: Mapping[str, Tensor], filename: str = "checkpoint",
                        num_heads: int | None = None) -> LoadedModel:
    """Rebuild a timm ViT from bare weights (its prefix found, its architecture inferred, strictly loaded)."""
    vit, root = vit_state(state, filename)
    dropped = [k for k in vit if k.startswith("head.") or k.startswith("head_drop")]  # a classifier: not needed
    vit = {k: v for k, v in vit.items() if k not in dropped}
    kwargs, notes = infer_vit_kwargs(vit, num_heads)
    model = timm.create_model("vit_base_patch16_224", pretrained=False, **kwargs)
    load_strict(model, vit, filename)
    if root:
        notes.insert(0, f"weights under `{root}`")
    if dropped:
        notes.append(f"ignored {len(dropped)} classifier tensor(s) (`head.*`)")
    arch = f"ViT {kwargs['embed_dim']} wide, depth {kwargs['depth']}, patch {kwargs['patch_size']}"
    return LoadedModel(model, "vit", f"{filename} ({arch})", tuple(notes), image_size=kwargs["img_size"])


def mae_from_state_dict(state: Mapping[str, Tensor], filename: str = "checkpoint",
                        norm_pix: bool = False) -> LoadedModel:
    """An MAE with its decoder from the official code's weights (``mae_visualize_vit_*.pth`` and the like).

    The official layout (encoder at the top level; ``mask_token``, ``decoder_embed``,
    ``decoder_blocks.*``, ``decoder_norm``, ``decoder_pred``) is sslcore's MAE with its encoder
    under ``backbone.``. ``decoder_pos_embed`` is the fixed sin-cos table sslcore computes itself.
    Whether the targets were normalised per patch is not in the weights: ``norm_pix`` says it (the
    official *visualize* checkpoints predict pixels; the *pretrain* ones normalised patches).
    """
    from sslcore.methods.mae import MAE, MAEConfig

    state = {re.sub(r"(^|\.)module\.", r"\1", k): v for k, v in state.items()}
    decoder = {k: v for k, v in state.items() if k.startswith("decoder_") or k == "mask_token"}
    encoder = {k: v for k, v in state.items() if k not in decoder}
    try:
        dim = decoder["decoder_embed.weight"].shape[0]
        depth = 1 + max(int(k.split(".")[1]) for k in decoder if k.startswith("decoder_blocks."))
    except (KeyError, ValueError) as e:
        raise CheckpointError(f"{filename} has an incomplete MAE decoder ({e})") from e
    vit = vit_from_state_dict(encoder, filename)
    kwargs, _ = infer_vit_kwargs(vit.model.state_dict())
    # Head width 32, as the official decoders (512 wide, 16 heads) and sslcore's (128, 4) have.
    cfg = MAEConfig(image_size=kwargs["img_size"], decoder_dim=dim, decoder_depth=depth,
                    decoder_heads=max(1, dim // 32), norm_pix_loss=norm_pix)
    mae = MAE(vit.model, cfg)
    weights = {**{f"backbone.{k}": v for k, v in vit.model.state_dict().items()},
               **{k: v for k, v in decoder.items() if k != "decoder_pos_embed"}}
    load_strict(mae, weights, filename)
    notes = vit.notes + (f"decoder heads assumed {cfg.decoder_heads} (head width 32)",
                         "pixel targets assumed" if not norm_pix else "norm-pix targets (per-patch normalised)")
    return LoadedModel(mae, "mae", f"{filename} (MAE, decoder {dim} wide, depth {depth})", notes,
                       image_size=cfg.image_size)


def load_local_file(data: bytes, filename: str, num_heads: int | None = None, norm_pix: bool = False) -> LoadedModel:
    """A user's checkpoint file: an ``sslcore export`` (self-describing), an official-layout MAE with
    its decoder, or the weights of a timm-style ViT."""
    state, metadata = read_checkpoint_bytes(data, filename)
    if "sslcore" in metadata:
        try:
            config = json.loads(metadata["sslcore"])
        except json.JSONDecodeError as e:
            raise CheckpointError(f"{filename} has a damaged sslcore config in its header") from e
        return model_from_export(state, config, filename)
    if any(k.split(".")[-2] == "decoder_pred" for k in state if "." in k):
        return mae_from_state_dict(state, filename, norm_pix)
    return vit_from_state_dict(state, filename, num_heads)


# ---------------------------------------------------------------------------------------------
# online hubs (never called in tests)
# ---------------------------------------------------------------------------------------------
def hub_timm(name: str) -> LoadedModel:
    """timm pretrained ViT (DINO, DINOv2, MAE encoders); downloads on first use."""
    model = timm.create_model(name, pretrained=True, num_classes=0, dynamic_img_size=True).eval()
    notes = (ENCODER_ONLY_NOTE,) if name.endswith(".mae") else ()
    return LoadedModel(model, "vit", f"timm {name}", notes, image_size=model.patch_embed.img_size[0])


@dataclass(frozen=True)
class HFMAEConfig:
    image_size: int
    norm_pix_loss: bool


class HFMAE(nn.Module):
    """An HF ``transformers`` ``ViTMAEForPreTraining`` behind sslcore MAE's ``reconstruct`` interface.

    :func:`sslcore.viz.mae.mae_reconstruct` then treats it like a run's MAE. HF draws its mask
    as the ``int(L * (1 - mask_ratio))`` patches of lowest ``noise``; any mask is imposed by
    giving the visible patches the lowest noise and the ratio that keeps exactly them.
    """

    def __init__(self, hf: nn.Module) -> None:
        super().__init__()
        self.hf = hf.eval()
        self.patch = hf.config.patch_size
        self.cfg = HFMAEConfig(hf.config.image_size, bool(hf.config.norm_pix_loss))
        self.backbone = nn.Identity()  # no dynamic size: mae_reconstruct crops a square at image_size
        self._lock = threading.Lock()  # the mask ratio lives in the shared config

    @torch.no_grad()
    def reconstruct(self, images: Tensor, mask: Tensor) -> "MAEReconstruction":
        """images: (N, 3, S, S) in [0, 1] at the model's size; mask: (N, L) 0 keep, 1 remove."""
        from sslcore.augment import normalize
        from sslcore.methods.mae import MAEReconstruction
        from sslcore.models.vit import patchify

        x = normalize(images.float())
        n, length = mask.shape
        keep = int((mask[0] == 0).sum())
        if ((mask == 0).sum(1) != keep).any():
            raise ValueError("every mask row must keep the same number of patches")
        noise = mask.float() + torch.arange(length) / (2 * length)  # visible first, raster order within
        with self._lock:
            self.hf.config.mask_ratio = 1 - (keep + 0.5) / length  # int(L * (1 - ratio)) == keep
            out = self.hf(pixel_values=x, noise=noise)
        if not torch.equal(out.mask.to(mask.dtype), mask):
            raise RuntimeError("the HF model did not apply the requested mask")
        grid = (x.shape[-2] // self.patch, x.shape[-1] // self.patch)
        return MAEReconstruction(images.float(), out.logits.float(), patchify(x, self.patch), mask.float(), grid,
                                 self.patch, self.cfg.norm_pix_loss)


def hub_hf_mae(name: str) -> LoadedModel:
    """An MAE with its decoder from the HF hub (``facebook/vit-mae-*``); needs the optional ``transformers``."""
    try:
        from transformers import ViTMAEForPreTraining
    except ImportError as e:
        raise ImportError("HF MAE models need the optional `transformers` package: "
                          "`pip install -e '.[hf]'` (or `pip install transformers`), then reload.") from e
    hf = ViTMAEForPreTraining.from_pretrained(name)
    return LoadedModel(HFMAE(hf), "mae", f"HF {name}", image_size=hf.config.image_size)

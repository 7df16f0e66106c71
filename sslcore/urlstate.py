"""Shareable page state: which widget values a link carries, and how a link's values are checked.

A page's knobs live in its URL under short names (``/mae_reconstructions?ratio=0.5&mask=block&v=1``), so a
teacher can hand out a link that opens the exact view. Each page has a schema: for every shareable widget its
URL name, its session-state widget key, its type with bounds or choices, and its default.

- :func:`decode` keeps only values that pass their field's check and names every value it drops. Nothing is
  clamped: a value out of range is dropped (the widget keeps its default), never moved to the bound.
- :func:`encode` writes only values that differ from their defaults, plus the schema version ``v``; a page
  left at its defaults gets a clean URL.
- ``v`` versions the schemas: a link made for another version is ignored as a whole, with a message, rather
  than read with names or choices that may have changed meaning.

Pure Python (no streamlit): ui.urlstate copies values between st.query_params and st.session_state.
Links never carry server paths or uploads: folder fields, file uploaders and the "folder" dataset choice are
left out of every schema.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

VERSION = 1
VERSION_PARAM = "v"
# Query parameters owned by other parts of the app (the Train page's run, the Compare page's race) and by
# Streamlit itself: no schema may use them.
RESERVED = frozenset({VERSION_PARAM, "run", "race", "embed", "embed_options"})
RUN_ID = r"[A-Za-z0-9_-]{1,80}"

_INT = re.compile(r"[+-]?\d{1,12}")
_FLOAT = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d{1,3})?")
_MAX_TEXT = 2000  # longer values are refused before any parsing


class Field(Protocol):
    """One shareable widget: ``parse`` turns URL text into a widget value (ValueError: why not), ``format``
    turns a widget value into URL text (ValueError for a value no link may carry)."""

    name: str
    key: str
    # None: the default depends on data (the model's last block), so the page gives it to encode's
    # ``defaults``; without one the value is always written (the Compare page's runs). A callable is read
    # when needed (the first checkpoint on disk).
    default: Any

    def parse(self, text: str) -> Any: ...

    def format(self, value: Any) -> str: ...


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _float_text(value: float) -> str:
    # 10 significant digits: a slider's 0.35000000000000003 reads 0.35 in the link.
    return f"{value:.10g}"


def _parse_float(text: str, low: float, high: float) -> float:
    if not _FLOAT.fullmatch(text):
        raise ValueError("is not a number")
    value = float(text)
    if not (math.isfinite(value) and low <= value <= high):
        raise ValueError(f"is out of range ({_float_text(low)} to {_float_text(high)})")
    return value


@dataclass(frozen=True)
class Int:
    """A whole number in ``[low, high]`` on a grid of ``step`` from ``low`` (a slider with step 500)."""

    name: str
    key: str
    default: int | None
    low: int
    high: int
    step: int = 1

    def parse(self, text: str) -> int:
        if not _INT.fullmatch(text):
            raise ValueError("is not a whole number")
        value = int(text)
        if not self.low <= value <= self.high:
            raise ValueError(f"is out of range ({self.low} to {self.high})")
        if (value - self.low) % self.step:
            raise ValueError(f"is not on the widget's steps of {self.step}")
        return value

    def format(self, value: Any) -> str:
        if not isinstance(value, int) or isinstance(value, bool):
            raise ValueError(f"{value!r} is not an int")
        return str(value)


@dataclass(frozen=True)
class Float:
    """A finite number in ``[low, high]``."""

    name: str
    key: str
    default: float | None
    low: float
    high: float

    def parse(self, text: str) -> float:
        return _parse_float(text, self.low, self.high)

    def format(self, value: Any) -> str:
        if not _number(value):
            raise ValueError(f"{value!r} is not a number")
        return _float_text(float(value))


@dataclass(frozen=True)
class Bool:
    """A toggle or checkbox: ``true``/``false`` in the link (``1``/``0`` read as well)."""

    name: str
    key: str
    default: bool | None

    def parse(self, text: str) -> bool:
        lowered = text.lower()
        if lowered in ("true", "1"):
            return True
        if lowered in ("false", "0"):
            return False
        raise ValueError("is not true or false")

    def format(self, value: Any) -> str:
        if not isinstance(value, bool):
            raise ValueError(f"{value!r} is not a bool")
        return "true" if value else "false"


Options = Sequence[Any] | Mapping[str, Any]


def _tokens(options: Options | Callable[[], Options]) -> dict[str, Any]:
    """URL token -> widget value. A plain sequence uses ``str(option)``; a mapping gives short tokens for
    long labels (``method`` for "a method's own pipelines"); a callable is read when a link is decoded
    (lists that live on disk, such as the shipped checkpoints)."""
    resolved = options() if callable(options) else options
    tokens = dict(resolved) if isinstance(resolved, Mapping) else {str(o): o for o in resolved}
    bad = [t for t in tokens if not t or "," in t]
    if bad:
        raise ValueError(f"URL tokens must be non-empty and free of commas: {bad}")
    return tokens


def _listing(tokens: Sequence[str], most: int = 8) -> str:
    shown = ", ".join(tokens[:most])
    return shown + (f" and {len(tokens) - most} more" if len(tokens) > most else "")


@dataclass(frozen=True)
class Choice:
    """One of a fixed set of options (a selectbox, radio, select slider or tabs)."""

    name: str
    key: str
    default: Any
    options: Options | Callable[[], Options]

    def parse(self, text: str) -> Any:
        tokens = _tokens(self.options)
        if text not in tokens:
            raise ValueError(f"is not one of: {_listing(list(tokens))}")
        return tokens[text]

    def format(self, value: Any) -> str:
        for token, option in _tokens(self.options).items():
            if option == value and type(option) is type(value):
                return token
        raise ValueError(f"{value!r} is not a choice")


@dataclass(frozen=True)
class Floats:
    """A tuple of ``length`` numbers in ``[low, high]``, in ascending order (a range slider): ``0.2,1``."""

    name: str
    key: str
    default: tuple[float, ...] | None
    low: float
    high: float
    length: int = 2

    def parse(self, text: str) -> tuple[float, ...]:
        parts = text.split(",")
        if len(parts) != self.length:
            raise ValueError(f"is not {self.length} comma-separated numbers")
        values = tuple(_parse_float(p, self.low, self.high) for p in parts)
        if list(values) != sorted(values):
            raise ValueError("is not in ascending order")
        return values

    def format(self, value: Any) -> str:
        if not isinstance(value, (tuple, list)) or not all(_number(v) for v in value):
            raise ValueError(f"{value!r} is not a tuple of numbers")
        return ",".join(_float_text(float(v)) for v in value)


@dataclass(frozen=True)
class Choices:
    """A list of distinct choices (a multiselect), comma-separated: from ``options``, or any text matching
    ``pattern`` where the list lives in the store (run ids: the page checks they exist)."""

    name: str
    key: str
    default: list[Any] | None
    options: Options | Callable[[], Options] | None = None
    pattern: str | None = None
    max_items: int = 50

    def _token_map(self) -> dict[str, Any] | None:
        return None if self.options is None else _tokens(self.options)

    def parse(self, text: str) -> list[Any]:
        parts = text.split(",") if text else []
        if len(parts) > self.max_items:
            raise ValueError(f"has more than {self.max_items} items")
        if len(set(parts)) != len(parts):
            raise ValueError("repeats an item")
        tokens = self._token_map()
        if tokens is not None:
            unknown = [p for p in parts if p not in tokens]
            if unknown:
                raise ValueError(f"has items that are not choices ({_listing(unknown, 3)})")
            return [tokens[p] for p in parts]
        bad = [p for p in parts if not re.fullmatch(self.pattern or r"\S+", p)]
        if bad:
            raise ValueError("has malformed items")
        return parts

    def format(self, value: Any) -> str:
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"{value!r} is not a list")
        tokens = self._token_map()
        if tokens is None:
            if any("," in str(v) for v in value):
                raise ValueError(f"{value!r} has an item with a comma")
            return ",".join(str(v) for v in value)
        back = {repr(v): t for t, v in tokens.items()}
        try:
            return ",".join(back[repr(v)] for v in value)
        except KeyError as e:
            raise ValueError(f"{e} is not a choice") from None


@dataclass(frozen=True)
class PageSchema:
    """The shareable widgets of one page; names and keys are unique, and no name is reserved."""

    fields: tuple[Field, ...]

    def __post_init__(self) -> None:
        names = [f.name for f in self.fields]
        keys = [f.key for f in self.fields]
        if len(set(names)) != len(names) or len(set(keys)) != len(keys):
            raise ValueError(f"duplicate URL names or widget keys in {names}")
        if RESERVED & set(names):
            raise ValueError(f"reserved URL names: {sorted(RESERVED & set(names))}")

    @property
    def names(self) -> frozenset[str]:
        """The query parameters this page owns: its fields' names and the version."""
        return frozenset(f.name for f in self.fields) | {VERSION_PARAM}

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(f.key for f in self.fields)


class Decoded(NamedTuple):
    values: dict[str, Any]  # widget key -> value, only the valid ones
    problems: list[str]  # one sentence per value that was ignored


def _quoted(name: str, text: str) -> str:
    # In backticks (Markdown code), so a crafted link cannot format the message; cut to a readable length.
    text = " ".join(text.replace("`", "'").split())
    return f"`{name}={text[:60] + '...' if len(text) > 60 else text}`"


def decode(page: str, params: Mapping[str, str]) -> Decoded:
    """The widget values a link sets on ``page``. Parameters the page does not own (``run``, ``race``,
    another feature's) are left alone; a value that fails its check is dropped and named in ``problems``."""
    schema = pages()[page]
    version = params.get(VERSION_PARAM)
    present = [f for f in schema.fields if f.name in params]
    if version is not None and version != str(VERSION):
        if not present:
            return Decoded({}, [])
        return Decoded({}, [f"This link's settings are for version {_quoted(VERSION_PARAM, version)} of the page "
                            f"(this app reads v={VERSION}): they were ignored and the page shows its defaults."])
    values: dict[str, Any] = {}
    problems: list[str] = []
    for field in present:
        text = params[field.name]
        try:
            if len(text) > _MAX_TEXT:
                raise ValueError("is too long")
            values[field.key] = field.parse(text)
        except ValueError as e:
            problems.append(f"The link's value {_quoted(field.name, text)} {e} and was ignored.")
    return Decoded(values, problems)


def encode(page: str, values: Mapping[str, Any], defaults: Mapping[str, Any] | None = None) -> dict[str, str]:
    """URL parameters for ``values`` (widget key -> value): those that differ from their defaults, plus
    ``v``; ``{}`` when every value is a default. ``defaults`` overrides a field's default where it depends
    on data (the attention block defaults to the model's last). A value no link may carry (an upload source)
    is left out, as is every key missing from ``values``."""
    overrides = defaults or {}
    params: dict[str, str] = {}
    for field in pages()[page].fields:
        if field.key not in values:
            continue
        try:
            text = field.format(values[field.key])
            field.parse(text)  # only what decode accepts, so every link this writes reads back
        except ValueError:
            continue
        default = overrides.get(field.key, field.default)
        default = default() if callable(default) else default
        if default is not None:
            try:
                if field.format(default) == text:
                    continue
            except ValueError:
                pass  # a default no link could carry: the value differs from it
        params[field.name] = text
    if params:
        params[VERSION_PARAM] = str(VERSION)
    return params


@functools.cache
def _gallery_names() -> tuple[str, ...]:
    # Cached: finding the names decodes the photos (0.3 s), and encode checks a photo on every rerun.
    from sslcore.data import gallery

    return tuple(gallery())


def _schemas() -> dict[str, PageSchema]:
    # Imported here, once: the option lists come from the engine, and importing it pulls in torch.
    from sslcore.augment import RECIPES
    from sslcore.concepts import COSINE_PRESETS
    from sslcore.methods import METHODS
    from sslcore.models import BACKBONES, load
    from sslcore.runs.config import RunConfig, backbones_for
    from sslcore.viz.attention import DISPLAY_SIZES

    def image(prefix: str, source: str = "gallery") -> tuple[Field, ...]:
        """ui.images.pick_image's widgets; "upload" is no choice: a link cannot carry a file."""
        return (Choice("image", f"{prefix}_src", source, ("gallery", "shapes", "digits")),
                Choice("photo", f"{prefix}_photo", "astronaut", _gallery_names),
                Int("sample", f"{prefix}_idx", 0, 0, 199))

    def model(prefix: str, kind: str, hub: Sequence[str]) -> tuple[Field, ...]:
        """ui.models.pick_model's simple choices: neither a local file nor one of the user's runs."""
        sources = {"lab": "lab checkpoint", "random": "random init",
                   "hub": "timm hub (online)" if kind == "vit" else "HF hub (online)"}
        return (Choice("model", f"{prefix}_src", "lab checkpoint", sources),
                Choice("ckpt", f"{prefix}_ship", lambda: next(iter(load.shipped_names(kind)), None),
                       lambda: load.shipped_names(kind)),
                Choice("hub", f"{prefix}_hub", hub[0], hub))

    methods = sorted(METHODS)
    base = RunConfig()
    vit_backbones = backbones_for("mae")
    heads = {"mean": "head mean", **{str(i): f"head {i}" for i in range(1, 65)}}
    return {
        "augmentations": PageSchema((
            *image("aug"),
            Choice("pipeline", "aug_pipeline", "recipe", {"recipe": "recipe", "method": "a method's own pipelines"}),
            Choice("recipe", "aug_recipe", "simclr", list(RECIPES)),
            Choice("size", "aug_size", 64, (32, 48, 64, 96, 128)),
            # The recipe's sliders default to the recipe's values (the page gives them).
            Floats("scale", "aug_scale", None, 0.05, 1.0),
            Float("flip", "aug_flip", None, 0.0, 1.0),
            Float("jitter", "aug_jp", None, 0.0, 1.0),
            Float("bright", "aug_b", None, 0.0, 1.0),
            Float("contrast", "aug_c", None, 0.0, 1.0),
            Float("sat", "aug_s", None, 0.0, 1.0),
            Float("hue", "aug_h", None, 0.0, 0.5),
            Float("gray", "aug_g", None, 0.0, 1.0),
            Float("blur", "aug_bl", None, 0.0, 1.0),
            Float("solar", "aug_so", None, 0.0, 1.0),
            Choice("method", "aug_method", "simclr", ("simclr", "moco", "byol", "dino")),
            Choice("msize", "aug_msize", 32, (32, 48, 64)),
            Int("pairs", "aug_n", 6, 1, 12),
            Int("seed", "aug_seed", 0, 0, 10_000),
        )),
        "concepts": PageSchema((
            Choice("tab", "concepts_tab", "Cosine similarity",
                   {"cosine": "Cosine similarity", "ntxent": "NT-Xent temperature", "ema": "Momentum EMA",
                    "masking": "MAE masking", "overlap": "Augmentation overlap"}),
            Choice("preset", "cos_preset", next(iter(COSINE_PRESETS)),
                   {str(i): p for i, p in enumerate(COSINE_PRESETS, 1)}),
            # The six coordinates default to the preset's (the page gives them: ui.urlstate.data_default).
            *(Float(n, f"cos_{n}", None, -1e6, 1e6) for n in ("ax", "ay", "px", "py", "nx", "ny")),
            Float("temp", "nce_t", 0.2, 0.02, 1.0),
            Float("pos", "nce_pos", 0.8, -1.0, 1.0),
            Choice("shown", "nce_shown", "loss", {"loss": "loss", "hard": "share of the gradient on the hardest 10%",
                                                  "neff": "effective number of negatives"}),
            Int("steps", "ema_steps", 4000, 500, 10_000, step=500),
            Float("drift", "ema_drift", 0.002, 0.0, 0.01),
            Float("noise", "ema_noise", 0.05, 0.0, 0.2),
            Float("ratio", "mask_ratio", 0.75, 0.25, 0.9),
            Int("seed", "mask_seed", 0, 0, 10_000),
            Choice("images", "overlap_data", "shapes", ("shapes", "digits")),
            Float("fire", "overlap_p", 1.0, 0.0, 1.0),
        )),
        "attention": PageSchema((
            *model("att_model", "vit", load.TIMM_DINO + load.TIMM_MAE_ENCODERS),
            *image("att_image", "shapes"),  # the page opens on the shapes DINO, on a shapes image
            # Size and block default to the model's (sslcore.viz.attention.display_size, its last block); bounds
            # are wide enough for any model, and the page checks block and head against the model loaded.
            Choice("size", "att_size", None, DISPLAY_SIZES),
            Int("block", "att_block", None, 1, 64),
            Float("mass", "att_mass", 0.6, 0.1, 1.0),
            Choice("head", "att_view", "head mean", heads),
            Choice("upsample", "att_mode", "nearest", ("nearest", "bilinear")),
            Float("opacity", "att_alpha", 0.6, 0.0, 1.0),
            Bool("contour", "att_contour", True),
        )),
        "mae": PageSchema((
            *model("mae_model", "mae", load.HF_MAE + load.TIMM_MAE_ENCODERS),
            *image("mae_image"),
            Bool("hand", "mae_by_hand", False),
            Float("ratio", "mae_ratio", 0.75, 0.05, 0.95),
            Choice("mask", "mae_strategy", "random", ("random", "block", "grid")),
            Int("seed", "mae_seed", 0, 0, 1_000_000),
            Int("short", "mae_short", None, 8, 4096),  # the page checks it against the model's sizes
            Bool("gt", "mae_gt", False),
        )),
        "train": PageSchema((  # ui.forms.run_config_form; never the folder fields (server paths)
            Choice("method", "train_method", "simclr", methods),
            Choice("data", "train_data", "shapes", ("shapes", "digits")),
            Choice("backbone", "train_bb", "convnet", backbones_for("simclr")),
            Choice("vit", "train_bb_vit", "vit_tiny", vit_backbones),
            Choice("size", "train_size", 32, (16, 24, 32, 48, 64)),
            Choice("batch", "train_bs", 128, (16, 32, 64, 128, 256, 512)),
            Choice("budget_kind", "train_bk", "seconds", ("seconds", "steps")),
            Int("budget", "train_budget", 60, 1, 100_000),
            Float("lr", "train_lr", 2e-3, 1e-5, 1.0),
            Int("seed", "train_seed", 0, 0, 2**31 - 1),
            Int("knn_k", "train_knn_k", base.knn_k, 1, 500),
            Float("knn_t", "train_knn_t", base.knn_t, 0.001, 10.0),
            Int("knn_bank", "train_knn_bank", base.knn_bank, 10, 100_000),
            Int("knn_test", "train_knn_test", base.knn_test, 10, 50_000),
            Float("knn_every", "train_knn_every", base.knn_every_seconds, 1.0, 3600.0),
            Bool("knn_stages", "train_knn_stages", base.knn_stages),
        )),
        "compare": PageSchema((  # ui.compare.race_form and the Compare tab; never the folder field
            Choices("runs", "compare_runs", None, pattern=RUN_ID),
            Choice("x", "compare_x", "step", ("step", "seconds")),
            Choice("images", "compare_n", 500, (200, 500, 1000, 2000)),
            Choices("methods", "race_methods", [m for m in ("simclr", "byol") if m in METHODS], methods),
            Choice("data", "race_data", "shapes", ("shapes", "digits")),
            Choice("backbone", "race_bb", "convnet", sorted(BACKBONES)),
            Choice("size", "race_size", 32, (16, 24, 32, 48, 64)),
            Choice("batch", "race_bs", 128, (16, 32, 64, 128, 256)),
            Choice("budget_kind", "race_bk", "seconds", ("seconds", "steps")),
            Int("budget", "race_budget", 60, 1, 100_000),
            Int("seed", "race_seed", 0, 0, 2**31 - 1),
        )),
    }


@functools.cache
def pages() -> dict[str, PageSchema]:
    """The schemas by page name, built on first use (their option lists import the engine)."""
    return _schemas()


def field_for(key: str) -> Field | None:
    """The schema field behind the widget ``key``, on whichever page shares it (None when none does)."""
    return next((f for schema in pages().values() for f in schema.fields if f.key == key), None)


def default_of(field: Field) -> Any:
    """``field``'s default, computed when it depends on what is installed (a callable)."""
    return field.default() if callable(field.default) else field.default


def widget_default(key: str, fallback: Any = None) -> Any:
    """The default a page schema gives the widget ``key`` (``fallback`` when no page shares it or it has
    none), so a page and its URL agree on what the widget shows before anyone touches it."""
    field = field_for(key)
    default = None if field is None else default_of(field)
    return fallback if default is None else default

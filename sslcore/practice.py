"""The Practice page as data: self-check questions, match-the-method, flashcards, the cosine exercise.

Facts come from the course material in ``../shared/course/`` (its practice page, cheatsheet, lecture
notes and summary); every sentence here is written for the lab, and each method is one the lab trains
(``sslcore.methods.METHODS``), so a learner can go from a question to the page that shows it happen.
Content is frozen dataclasses; scoring, shuffling and the printable export are pure functions.
"""

from __future__ import annotations

import html
import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from sslcore.concepts import COSINE_PRESETS, cosine_similarity

# Registry name (sslcore.methods.METHODS) -> the name a learner reads. tests/test_practice.py holds the
# keys equal to the registry, so a method added there needs a label here.
METHOD_LABELS: dict[str, str] = {
    "simclr": "SimCLR",
    "moco": "MoCo v2",
    "byol": "BYOL",
    "dino": "DINO",
    "mae": "MAE",
    "rotation": "Rotation prediction",
    "jigsaw": "Jigsaw puzzle",
    "relpos": "Relative position",
    "colorization": "Colorization",
    "inpainting": "Inpainting",
}

# Other names a learner (or a teacher's answer sheet) may use for a registered method; matched after
# lower-casing and trimming, as are the registry names and the labels above.
ALIASES: dict[str, str] = {
    "moco v2": "moco", "mocov2": "moco", "momentum contrast": "moco",
    "bootstrap your own latent": "byol",
    "self-distillation": "dino", "dino v1": "dino",
    "masked autoencoder": "mae", "masked autoencoders": "mae", "masked image modeling": "mae",
    "rotnet": "rotation",
    "jigsaw puzzles": "jigsaw",
    "relative position": "relpos", "relative patch position": "relpos", "context prediction": "relpos",
    "colorisation": "colorization", "colourisation": "colorization", "colourization": "colorization",
    "context encoder": "inpainting", "context encoders": "inpainting",
}


def resolve_method(text: str | None) -> str | None:
    """The registry name meant by ``text`` (a registry name, a label or an alias), else None."""
    if text is None:
        return None
    key = " ".join(str(text).lower().split())
    if key in METHOD_LABELS:
        return key
    by_label = {label.lower(): name for name, label in METHOD_LABELS.items()}
    return by_label.get(key) or ALIASES.get(key)


# --- self-check -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Question:
    """A self-check question, its model answer and the lab page (its title) where it can be seen."""

    id: str
    prompt: str
    answer: str
    page: str


SELF_CHECK: tuple[Question, ...] = (
    Question("what-is-ssl", "What makes a learning method *self-supervised*?",
             "A fixed rule turns raw, unlabelled images into inputs and targets (which way the picture was "
             "turned, which patches were hidden, which two crops came from one photo) and the network is "
             "trained on them with an ordinary supervised loss. Nobody annotates anything. The made-up task "
             "is only a means: what we keep afterwards is the encoder it shaped.",
             "Pretext tasks"),
    Question("three-pretext", "Name three pretext tasks from before contrastive learning, and what a network "
                              "must grasp to solve each.",
             "Rotation: say which quarter turn was applied; impossible without knowing how objects normally "
             "stand. Jigsaw: put shuffled tiles back in order; needs to know which parts go where. Relative "
             "position: say where a second patch sits around a first; needs parts and layout. Colorization: "
             "guess colours from brightness; needs to know what the object is (grass and skin have typical "
             "colours). Inpainting: paint in a hidden region; needs the surrounding context to mean something.",
             "Pretext tasks"),
    Question("simclr", "Describe SimCLR's training signal in one sentence.",
             "Every image in the batch is augmented twice, both views go through the same encoder and "
             "projection head, and a temperature-scaled softmax over cosine similarities (NT-Xent) rewards "
             "each view for picking its twin out of all the other views in the batch, which serve as negatives.",
             "Augmentations"),
    Question("moco-byol", "What does MoCo add on top of SimCLR, and what does BYOL leave out?",
             "MoCo keeps the negatives in a queue that outlives the batch and encodes them with a slowly moving "
             "average of the query encoder, so it can use far more negatives than one batch holds. BYOL drops "
             "negatives altogether: an online network with an extra predictor learns to match what a "
             "moving-average copy of itself outputs for another view of the same image.",
             "Concepts"),
    Question("mae", "What is masked image modelling as MAE does it, and how much of the image is hidden?",
             "The image is cut into patches and a large random share, typically 75%, is dropped. A big "
             "encoder reads only the remaining quarter and a small decoder predicts the pixels of the hidden "
             "patches; the loss counts only those. Hiding that much makes the task need real understanding, "
             "and skipping the hidden patches makes the encoder cheap to run.",
             "MAE reconstructions"),
    Question("dino", "What does DINO's teacher do, and what shows up in a DINO-trained ViT?",
             "The teacher is a moving average of the student. It sees the large crops, its outputs are centred "
             "and sharpened, and the student is trained to produce the same distribution from every crop, "
             "small ones included. Nothing is labelled, yet the ViT's attention from the class token tends to "
             "outline the main object.",
             "DINO attention"),
    Question("collapse", "What is collapse, and how would you notice it during a run?",
             "Collapse is the cheap way out of a matching objective: the encoder sends every image to (nearly) "
             "the same output, so all pairs agree and nothing is learned. You see it as the spread of the "
             "normalised embeddings falling towards zero and a kNN accuracy that stops rising. Negatives, a "
             "predictor with a slow target, or centring plus sharpening are what keep methods away from it.",
             "Train"),
    Question("workflow", "Outline the pre-train-then-transfer workflow.",
             "First, train an encoder once on a large unlabelled collection with a self-supervised method; "
             "this is the expensive step. Then reuse it for each labelled task: either freeze it and fit a "
             "linear classifier on its features, or fine-tune the whole network, giving the encoder a "
             "low learning rate. One pre-training pays for many downstream tasks.",
             "Train"),
    Question("probe-vs-finetune", "Linear probe or fine-tuning: what does each measure, and when do you use it?",
             "A linear probe keeps the encoder frozen and trains a single linear layer, so the score reflects "
             "the features as they came out of pre-training: the fair way to compare encoders. Fine-tuning updates the "
             "encoder too and usually gives the best accuracy on the task, which is what you want in "
             "production. The two rankings can disagree.",
             "Embeddings"),
    Question("x-ray", "You have 5 million unlabelled chest X-rays and 2,000 labelled ones in two classes. "
                      "Sketch the workflow and say why it beats a network trained on the 2,000 alone.",
             "Pre-train an encoder on all the unlabelled scans (MAE or a DINO-style method suit a large "
             "image-only collection), run a linear probe on the labelled set as a baseline and sanity check, "
             "then fine-tune, the encoder at a low learning rate and a new head at a higher one. "
             "Two thousand images are too few to learn what chest X-rays look like; the unlabelled scans "
             "teach anatomy, normal variation and scanner quirks for free, and the scarce labels are then "
             "spent only on the diagnostic decision.",
             "Embeddings"),
    Question("augment", "Why does a contrastive method need strong augmentations?",
             "The network learns to ignore whatever differs between two views of one image. If the views "
             "differ little, matching them is solvable from trivial cues (colour histogram, exact pixels) and "
             "the features learn nothing semantic; random crops together with colour changes force it to "
             "rely on what the object is.",
             "Augmentations"),
)


# --- match the method -------------------------------------------------------------------------------

@dataclass(frozen=True)
class MatchItem:
    """A short description; ``method`` is the registry name that fits; ``why`` says why, in one sentence."""

    id: str
    description: str
    method: str
    why: str


MATCH_ITEMS: tuple[MatchItem, ...] = (
    MatchItem("simclr", "Each image is augmented twice; each view must find its partner among all the other "
                        "views in the same batch, so a bigger batch means more negatives.",
              "simclr", "Negatives drawn only from the current batch and a temperature-scaled softmax over "
                        "cosine similarities (NT-Xent) are SimCLR's whole recipe."),
    MatchItem("moco", "Negatives are stored in a first-in, first-out queue that outlives the batch; the keys come "
                      "from an encoder that slowly follows the query encoder.",
              "moco", "A queue of negatives plus a momentum key encoder is what MoCo adds, freeing the "
                      "number of negatives from the batch size."),
    MatchItem("byol", "No negatives at all: an online network with an extra predictor learns to match a "
                      "moving-average copy of itself on another view of the image.",
              "byol", "Predicting a slow-moving target without any negatives, kept from collapsing by the "
                      "asymmetric predictor, is what makes BYOL surprising."),
    MatchItem("dino", "A student learns to output the same centred, sharpened distribution as a momentum "
                      "teacher, the teacher seeing large crops and the student small ones as well.",
              "dino", "Self-distillation towards a centred and sharpened averaged teacher is DINO, whose "
                      "ViT attention ends up outlining objects."),
    MatchItem("mae", "Three patches out of four are dropped; a large ViT encoder reads only the rest and a "
                     "small decoder predicts the missing pixels.",
              "mae", "Masking 75% of the patches with a heavy encoder and a light decoder is MAE's "
                     "signature asymmetric design."),
    MatchItem("rotation", "The picture is turned by 0, 90, 180 or 270 degrees and the network names the turn.",
              "rotation", "A 4-way classification of the applied quarter turn is the rotation task, and it "
                          "needs the network to know which way objects stand."),
    MatchItem("jigsaw", "A 3x3 grid of tiles is shuffled by one of a fixed set of orders, and the network "
                        "says which order was used.",
              "jigsaw", "Recovering the permutation of shuffled tiles is the jigsaw puzzle, which rewards "
                        "knowing which parts belong where."),
    MatchItem("relpos", "Two patches come from one image, a central one and one of its eight neighbours; the "
                        "network says where the neighbour sits.",
              "relpos", "Naming one of eight spatial relations between two patches is relative position "
                        "(context prediction), the oldest task here."),
    MatchItem("colorization", "Only the brightness of the image goes in; the network must predict its colours.",
              "colorization", "Recovering colour from a grayscale input is colorization, and plausible colours "
                              "depend on recognising the object."),
    MatchItem("inpainting", "One square region of the image is blanked out and an encoder-decoder paints the "
                            "missing pixels back from what surrounds it.",
              "inpainting", "Filling one large hole from its context is inpainting (the context encoder); MAE "
                            "instead hides many small patches and leaves them out of the encoder."),
)


def shuffled(items: Sequence[MatchItem], seed: int) -> tuple[MatchItem, ...]:
    """``items`` in an order fixed by ``seed`` (same seed, same order, for a whole class)."""
    order = list(items)
    random.Random(seed).shuffle(order)
    return tuple(order)


@dataclass(frozen=True)
class ItemResult:
    """One scored item: what was given (a registry name, or None when unanswered) and whether it fits."""

    item: MatchItem
    given: str | None
    correct: bool

    @property
    def explanation(self) -> str:
        return self.item.why

    @property
    def feedback(self) -> str:
        expected = METHOD_LABELS[self.item.method]
        if self.correct:
            return f"Right, {expected}. {self.item.why}"
        if self.given is None:
            return f"No answer; it is {expected}. {self.item.why}"
        return f"Not {METHOD_LABELS.get(self.given, self.given)}; it is {expected}. {self.item.why}"


@dataclass(frozen=True)
class Score:
    results: tuple[ItemResult, ...]

    @property
    def correct(self) -> int:
        return sum(r.correct for r in self.results)

    @property
    def total(self) -> int:
        return len(self.results)

    @property
    def fraction(self) -> float:
        return self.correct / self.total if self.total else 0.0

    def __str__(self) -> str:
        return f"{self.correct} / {self.total}"


def score(answers: Mapping[str, str | None], items: Sequence[MatchItem] = MATCH_ITEMS) -> Score:
    """Score ``answers`` (item id -> registry name, label or alias; missing or None: unanswered), item by item
    in the order of ``items``. An answer naming no known method counts as wrong; an unknown item id raises."""
    ids = {item.id for item in items}
    unknown = set(answers) - ids
    if unknown:
        raise ValueError(f"no match item(s) {sorted(unknown)}; items are {sorted(ids)}")
    results = []
    for item in items:
        raw = answers.get(item.id)
        given = resolve_method(raw) if raw is not None else None
        results.append(ItemResult(item, given if given is not None else raw, given == item.method))
    return Score(tuple(results))


# --- flashcards -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Flashcard:
    question: str
    answer: str


FLASHCARDS: tuple[Flashcard, ...] = (
    Flashcard("What is self-supervised learning?",
              "Training on targets that a rule derives from unlabelled data, with an ordinary supervised loss, "
              "to obtain an encoder whose features transfer to other tasks."),
    Flashcard("Pretext task or downstream task: which one do we care about?",
              "The downstream task (the real application, usually with few labels). The pretext task is a "
              "made-up exercise whose only job is to train the encoder."),
    Flashcard("Name three early pretext tasks.",
              "Pick three: rotation, jigsaw, relative patch position, colorization, inpainting."),
    Flashcard("SimCLR in one line?",
              "Two augmented views of an image must recognise each other among the rest of the batch (NT-Xent "
              "loss); it needs large batches and strong augmentations."),
    Flashcard("What is the temperature in NT-Xent / InfoNCE for?",
              "It divides the cosine similarities before the softmax: a low value focuses the gradient on the "
              "hardest negatives, a high value spreads it over all of them."),
    Flashcard("Why does SimCLR put a projection head after the encoder?",
              "The loss makes the projected vector z ignore augmentations; the head absorbs that loss of "
              "information, so the encoder output h, used downstream, keeps more of it."),
    Flashcard("What does MoCo add?",
              "A queue of negatives kept across batches, encoded by a momentum copy of the encoder, so the "
              "number of negatives no longer depends on the batch size."),
    Flashcard("How is a momentum (EMA) encoder updated?",
              "θ_k ← m·θ_k + (1 − m)·θ_q after every step, with m close to 1 (MoCo uses 0.999); no gradient "
              "reaches it."),
    Flashcard("What is surprising about BYOL?",
              "It learns without any negatives: an online network plus predictor matches a moving-average "
              "target of itself, and the asymmetry prevents collapse."),
    Flashcard("DINO in one line?",
              "Self-distillation without labels: a student copies the centred, sharpened output of a teacher "
              "that is its own moving average; its ViT attention finds objects."),
    Flashcard("MAE's recipe?",
              "Hide 75% of the patches, encode only the visible 25% with a large ViT, let a small decoder "
              "predict the hidden pixels; the loss counts hidden patches only."),
    Flashcard("Why is MAE's encoder cheap to train?",
              "It never processes the masked patches: at a 75% ratio it runs on a quarter of the tokens."),
    Flashcard("What is collapse?",
              "Every image gets (almost) the same embedding, which trivially satisfies a matching loss; "
              "negatives, an asymmetric predictor or centring with sharpening guard against it."),
    Flashcard("Linear probe vs fine-tuning?",
              "Probe: the encoder stays fixed under a single linear layer; it grades features fairly. "
              "Fine-tune: everything trains (the encoder slowly); it gives the best task accuracy."),
    Flashcard("Why does self-supervised learning matter most where labels are scarce?",
              "Medical, satellite or scientific images come in huge unlabelled numbers; pre-training turns them "
              "into a good encoder, and the few labels only have to train the task-specific part."),
    Flashcard("Pitfall: is self-supervised the same as unsupervised?",
              "No. Self-supervised methods still train on targets (derived ones); classical unsupervised "
              "methods such as clustering or density estimation have no targets at all."),
    Flashcard("Pitfall: does an encoder pre-trained on any data transfer to anything?",
              "No. It absorbs what its pre-training images look like; web photos to satellite images, for "
              "example, often transfer poorly. Pre-train on data close to the target domain."),
    Flashcard("Pitfall: are pretext tasks obsolete now that contrastive methods work?",
              "No. On small datasets or in domains where the usual augmentations make no sense, a pretext "
              "task can still be the better choice."),
    Flashcard("Pitfall: is linear-probe accuracy the accuracy you will get on the task?",
              "No. The probe measures frozen features; fine-tuning measures what the task can reach, and the "
              "two often differ."),
)


def flashcards_markdown(cards: Sequence[Flashcard] = FLASHCARDS, title: str = "SSL Lab flashcards") -> str:
    """All cards as Markdown, one card per section, separated by rules."""
    parts = [f"# {title}", ""]
    for i, card in enumerate(cards, 1):
        parts += [f"## {i}. {card.question}", "", card.answer, "", "---", ""]
    return "\n".join(parts)


def flashcards_html(cards: Sequence[Flashcard] = FLASHCARDS, title: str = "SSL Lab flashcards") -> str:
    """All cards as a standalone HTML page that prints one card per page (question above, answer below)."""
    blocks = "\n".join(
        f'<section class="card"><p class="n">{i} / {len(cards)}</p><h2>{html.escape(c.question)}</h2>'
        f'<hr><p class="a">{html.escape(c.answer)}</p></section>' for i, c in enumerate(cards, 1))
    return (f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>\n'
            "<style>body{font-family:sans-serif;max-width:40em;margin:2em auto}"
            ".card{border:1px solid #888;border-radius:8px;padding:1.5em;margin:1em 0;break-inside:avoid}"
            ".n{color:#666;font-size:0.8em}.a{font-size:1.1em}"
            "@media print{.card{break-after:page;border:none}}</style></head>\n"
            f"<body><h1>{html.escape(title)}</h1>\n{blocks}\n</body></html>\n")


# --- cosine exercise --------------------------------------------------------------------------------

COSINE_EXERCISE = COSINE_PRESETS["a=[2,1], a+=[3,2], b=[-2,1]"]  # (anchor, positive, negative)


def _num(x: float) -> str:
    """A coordinate as a reader writes it: 2, -0.5, 0.97."""
    return f"{x:g}"


@dataclass(frozen=True)
class CosineWorked:
    """The cosine exercise worked out: norms, dot products and both cosines, every number computed."""

    anchor: tuple[float, ...]
    positive: tuple[float, ...]
    negative: tuple[float, ...]
    cos_positive: float
    cos_negative: float

    @staticmethod
    def norm(v: Sequence[float]) -> float:
        return float(np.linalg.norm(np.asarray(v, dtype=float)))

    @staticmethod
    def dot(u: Sequence[float], v: Sequence[float]) -> float:
        return float(np.dot(np.asarray(u, dtype=float), np.asarray(v, dtype=float)))

    def steps(self) -> tuple[str, ...]:
        """The worked answer, line by line (formulas and numbers only)."""
        names = {"a": self.anchor, "a+": self.positive, "b": self.negative}
        lines = []
        for name, v in names.items():
            squares = " + ".join(f"({_num(x)})²" if x < 0 else f"{_num(x)}²" for x in v)
            lines.append(f"|{name}| = sqrt({squares}) = sqrt({_num(sum(x * x for x in v))}) ≈ {self.norm(v):.3f}")
        for name, v, cos in (("a+", self.positive, self.cos_positive), ("b", self.negative, self.cos_negative)):
            terms = " + ".join(f"{_num(x)}·{_num(y)}" if y >= 0 else f"{_num(x)}·({_num(y)})"
                               for x, y in zip(self.anchor, v))
            denom = self.norm(self.anchor) * self.norm(v)
            lines.append(f"cos(a, {name}) = ({terms}) / ({self.norm(self.anchor):.3f} · {self.norm(v):.3f}) "
                         f"= {_num(round(self.dot(self.anchor, v), 6))} / {denom:.3f} ≈ {cos:.3f}")
        return tuple(lines)


def work_cosine(anchor: Sequence[float], positive: Sequence[float], negative: Sequence[float]) -> CosineWorked:
    """Both cosines of the exercise (sslcore.concepts.cosine_similarity); raises ValueError on a zero vector or
    vectors of different lengths."""
    if not len(anchor) == len(positive) == len(negative):
        raise ValueError(f"vectors need one length, got {len(anchor)}, {len(positive)}, {len(negative)}")
    a, p, n = (tuple(float(x) for x in v) for v in (anchor, positive, negative))
    return CosineWorked(a, p, n, cosine_similarity(a, p), cosine_similarity(a, n))


def check_answer(given: float | None, expected: float, tolerance: float = 0.005) -> bool:
    """A learner's number counts when it is within ``tolerance`` of the computed one (three decimals)."""
    return given is not None and math.isfinite(given) and abs(given - expected) <= tolerance


__all__ = ["ALIASES", "COSINE_EXERCISE", "FLASHCARDS", "MATCH_ITEMS", "METHOD_LABELS", "SELF_CHECK", "CosineWorked",
           "Flashcard", "ItemResult", "MatchItem", "Question", "Score", "check_answer", "flashcards_html",
           "flashcards_markdown", "resolve_method", "score", "shuffled", "work_cosine"]

"""Guided lessons, in the spirit of TensorFlow Playground's tutorials: a few steps that each open a lab page
with chosen settings (through the page's URL state), sometimes start a short run, and ask what the learner
sees, with the answer checked and explained.

Facts come from the course material in ``../shared/course/`` and from the lab's own measurements
(``benchmarks/README.md``); every sentence is written for the lab. A step's ``params`` are the query parameters
of its page: the names of its schema in :mod:`sslcore.urlstate` (tests/test_lessons.py decodes every one, so a
renamed widget breaks the test, not the lesson), ``run`` for the Runs and Train pages, nothing for pages
without URL state. A step's ``run`` is a few fields of :class:`sslcore.runs.RunConfig` for a run of at most
:data:`MAX_RUN_SECONDS` on ``shapes``; :func:`run_config` builds and checks it.

Pure data and checks: no streamlit, and nothing heavy is imported until a run is built.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from sslcore.runs import RunConfig

MAX_RUN_SECONDS = 30.0
# The Lessons page's own query parameters (``?lesson=views&step=2``); tests/test_lessons.py checks that no page
# schema and no reserved name uses them.
LESSON_PARAM, STEP_PARAM = "lesson", "step"
DONE = "done"  # the step token of a finished lesson
# A page's views file -> its schema in sslcore.urlstate.pages(). Links to these pages carry v=1.
SCHEMAS: dict[str, str] = {
    "views/augmentations.py": "augmentations",
    "views/concepts.py": "concepts",
    "views/attention.py": "attention",
    "views/mae.py": "mae",
    "views/train.py": "train",
    "views/compare.py": "compare",
}
# Query parameters a page reads outside its schema (sslcore.urlstate.RESERVED): the run it opens.
EXTRA_PARAMS: dict[str, frozenset[str]] = {
    "views/runs.py": frozenset({"run"}),
    "views/train.py": frozenset({"run"}),
}


@dataclass(frozen=True)
class Step:
    """One screen of a lesson: what to do, where, and a multiple-choice question about what shows.

    ``answer`` indexes ``choices``; ``explanation`` is shown after every check, right or wrong.
    """

    text: str
    question: str
    choices: tuple[str, ...]
    answer: int
    explanation: str
    page: str | None = None  # the views file to open, e.g. "views/mae.py"
    params: Mapping[str, str] = field(default_factory=dict)  # URL settings for that page
    run: Mapping[str, Any] | None = None  # RunConfig fields of a short run on shapes

    def __post_init__(self) -> None:
        if len(self.choices) < 2 or len(set(self.choices)) != len(self.choices):
            raise ValueError(f"a step needs two or more distinct choices: {self.question!r}")
        if not 0 <= self.answer < len(self.choices):
            raise ValueError(f"answer {self.answer} is not one of the {len(self.choices)} choices: {self.question!r}")
        if self.page is None and self.params:
            raise ValueError(f"settings without a page: {self.question!r}")

    @property
    def query_params(self) -> dict[str, str]:
        """The link's query parameters: ``params`` plus the schema version when they set any widget."""
        params = dict(self.params)
        if self.page in SCHEMAS and set(params) - EXTRA_PARAMS.get(self.page, frozenset()):
            params["v"] = "1"  # sslcore.urlstate.VERSION, written out so this module imports nothing heavy
        return params


@dataclass(frozen=True)
class Lesson:
    """A short guided sequence; ``key`` is its name in the URL (``?lesson=views``)."""

    key: str
    title: str
    goal: str
    steps: tuple[Step, ...]


def check(step: Step, choice: int | None) -> bool:
    """Whether ``choice`` (an index into ``step.choices``; None: nothing picked) is the right answer."""
    if choice is None:
        return False
    if not 0 <= choice < len(step.choices):
        raise ValueError(f"choice {choice} is not one of the {len(step.choices)} choices")
    return choice == step.answer


class Position(NamedTuple):
    lesson: Lesson | None  # None: the link names no lesson (or one that does not exist)
    index: int | None  # 0-based step; len(steps) when finished; None: the link gives no (valid) step
    problems: list[str]  # one sentence per value that was ignored


def step_token(lesson: Lesson, index: int) -> str:
    """The URL's ``step`` for ``index``: 1-based, or :data:`DONE` past the last step."""
    return DONE if index >= len(lesson.steps) else str(index + 1)


def locate(params: Mapping[str, str]) -> Position:
    """The lesson and step a link names (``lesson=views&step=2``); a value that is not one is named in
    ``problems`` and ignored."""
    key, token = params.get(LESSON_PARAM), params.get(STEP_PARAM)
    if key is None:
        return Position(None, None, [])
    lesson = BY_KEY.get(key)
    if lesson is None:
        shown = re.sub(r"[^A-Za-z0-9_-]", "", key)[:40]  # plain text only: the page prints it
        return Position(None, None, [f"There is no lesson called `{shown}`; the lessons are "
                                     f"{', '.join(f'`{k}`' for k in BY_KEY)}."])
    if token is None:
        return Position(lesson, None, [])
    if token == DONE:
        return Position(lesson, len(lesson.steps), [])
    if re.fullmatch(r"\d{1,3}", token) and 1 <= int(token) <= len(lesson.steps):
        return Position(lesson, int(token) - 1, [])
    return Position(lesson, None, [f"This lesson has steps 1 to {len(lesson.steps)}: the link's step was ignored."])


def run_config(step: Step) -> RunConfig:
    """The step's run as a RunConfig, checked: on ``shapes``, at most :data:`MAX_RUN_SECONDS` of training, a
    backbone the method can train, options the method knows. ValueError says what is wrong."""
    from dataclasses import fields, replace

    from sslcore.methods import METHODS
    from sslcore.runs import RunConfig
    from sslcore.runs.config import backbones_for, default_backbone

    if step.run is None:
        raise ValueError("this step has no run")
    given = dict(step.run)
    unknown = set(given) - {f.name for f in fields(RunConfig)}
    if unknown:
        raise ValueError(f"RunConfig has no field(s) {sorted(unknown)}")
    method = given.get("method", RunConfig.method)
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}")
    cfg = RunConfig(**{"backbone": default_backbone(method), **given, "options": dict(given.get("options", {}))})
    if cfg.dataset != "shapes" or cfg.data_dir is not None:
        raise ValueError(f"a lesson's run trains on shapes, not {cfg.dataset!r}")
    if cfg.max_seconds is None or not 0 < cfg.max_seconds <= MAX_RUN_SECONDS:
        raise ValueError(f"a lesson's run trains for at most {MAX_RUN_SECONDS:g} s, not {cfg.max_seconds}")
    if cfg.backbone not in backbones_for(method):
        raise ValueError(f"{method} cannot train backbone {cfg.backbone!r}")
    try:
        replace(METHODS[method].Config(), **cfg.options)
    except TypeError as e:  # an option the method's Config does not have
        raise ValueError(f"{method}: {e}") from None
    return cfg


def _step(text: str, question: str, choices: tuple[str, ...], answer: int, explanation: str,
          page: str | None = None, params: Mapping[str, str] | None = None,
          run: Mapping[str, Any] | None = None) -> Step:
    return Step(text, question, choices, answer, explanation, page, dict(params or {}), run)


VIEWS = Lesson("views", "Views and invariance",
               "See what two random views of one image share, why views that are too alike teach nothing, and "
               "which operations carry the lesson.", (
    _step("The Augmentations page draws pairs of views from one photo with SimCLR's recipe: every crop, flip "
          "and colour change is drawn again for each view. Look down the rows of pairs.",
          "Whatever the random draws, what do the two views of a pair always share?",
          ("The same region of the photo", "The photo they were cut from, and so what it shows",
           "The same colours", "Nothing: they are as unrelated as two different photos"), 1,
          "Position, scale, orientation and colour all change between the two views; only the source photo "
          "stays. The loss rewards the encoder for giving both views the same embedding, so it learns to keep "
          "what survives the operations and to drop what they change.",
          "views/augmentations.py", {"recipe": "simclr", "pairs": "6", "seed": "0"}),
    _step("Now the recipe is \"none\": full-frame crops, no flip, no colour jitter, no grayscale. Read the "
          "correlation r printed under each pair.",
          "What do the pairs look like, and what would a network learn from them?",
          ("They are identical (r = 1.00), so matching them is trivial and teaches nothing",
           "They are so different that the task cannot be solved",
           "They look as before: the recipe only changes the training speed",
           "They are gray, so the network learns shape alone"), 0,
          "With nothing left to chance both views are the same picture, and any encoder, even a random one, "
          "already gives them the same embedding. A network only becomes invariant to a change it has been "
          "shown; no variety between views means no invariance to learn.",
          "views/augmentations.py", {"recipe": "none", "pairs": "6", "seed": "0"}),
    _step("The Concepts page's overlap tab makes both views of each shapes image with one operation at a time, "
          "every operation firing on every view, and shows the mean pixel correlation of each combination. The "
          "diagonal holds the pairs where both views used the same operation.",
          "Which operations give a diagonal value of exactly 1?",
          ("Crop and colour jitter", "Flip and grayscale", "Blur and crop", "None of them"), 1,
          "A flip that always fires and a grayscale conversion have no randomness left: applied twice, they give "
          "the same picture twice. Along the diagonal, two random crops keep the least in common, which is why "
          "the crop, together with colour distortion, is the pair of operations SimCLR found to matter most.",
          "views/concepts.py", {"tab": "overlap", "images": "shapes", "fire": "1"}),
    _step("On shapes each object is painted in a random colour that has nothing to do with its class. Start a "
          "30-second SimCLR run whose views keep their crops and flips but lose their colour jitter, and watch "
          "its kNN against the dashed random-init line (on a busy machine 30 s is only a few dozen steps). The "
          "lab's own recipe for shapes turns the jitter up to strength 1.5 instead.",
          "Why does the recipe for shapes turn colour jitter up rather than off?",
          ("Colour jitter makes every step cheaper",
           "Without it, colour alone tells which views belong together, so the network can skip learning shape",
           "The kNN monitor needs colour jitter to work",
           "The loss cannot be computed on views of one colour"), 1,
          "A contrastive loss is satisfied by the easiest cue that pairs the views. Left intact, a flat colour "
          "is that cue, and since colour on shapes says nothing about the class, the neighbours found by kNN "
          "share a colour rather than a shape. Strong jitter removes the shortcut and leaves the outline as "
          "what the two views have in common.",
          run={"method": "simclr", "dataset": "shapes", "max_seconds": 30, "options": {"color_strength": 0.0}}),
))

COLLAPSE = Lesson("collapse", "Contrastive, non-contrastive and collapse",
                  "Follow what negatives do to the loss, break a method on purpose, and see what keeps the "
                  "methods without negatives alive.", (
    _step("The cosine tab computes the similarity of an anchor with a positive (another view of it) and with a "
          "negative (a view of another image).",
          "Which of the two cosines does a contrastive loss raise, and which does it lower?",
          ("It raises both", "It raises cos(anchor, positive) towards 1 and lowers cos(anchor, negative)",
           "It lowers cos(anchor, positive) and raises cos(anchor, negative)",
           "Neither: it works on the vectors' lengths"), 1,
          "Here the positive sits at 0.992 and the negative at -0.600. Training pushes the first up and the "
          "second down for every pair in every batch. Only the angle matters: stretching a vector leaves its "
          "cosine where it was.",
          "views/concepts.py", {"tab": "cosine", "preset": "1"}),
    _step("The NT-Xent tab shows how one anchor's loss shares its gradient among seven negatives of "
          "different similarity. The link sets the temperature T to 0.05.",
          "At T = 0.05, how is the gradient shared among the negatives in the bar chart?",
          ("Evenly over all seven", "Almost all of it goes to the most similar negative (0.7)",
           "Most of it goes to the least similar negative (-0.5)",
           "None goes to the negatives at such a low temperature"), 1,
          "Dividing the similarities by a small T sharpens the softmax, so the negative closest to the anchor "
          "takes nearly all the push; drag T up to 1 and the bars even out. The temperature sets how hard the "
          "loss concentrates on the negatives it confuses most.",
          "views/concepts.py", {"tab": "ntxent", "temp": "0.05"}),
    _step("Take SimCLR's negatives away: only the pull between the two views of each image is left. Start the "
          "run and open it on the Train page. The collapse monitor plots the spread (std) of the normalised "
          "embeddings; the green line marks a healthy 1/sqrt(d).",
          "What does the spread of the embeddings do?",
          ("It stays near the green line", "It drops towards 0: every image gets nearly the same embedding",
           "It climbs above 1", "It goes up and down with the learning rate"), 1,
          "With nothing pushing images apart, the cheapest way to make two views agree is to make every image "
          "agree: a constant output brings the loss to its floor within a few steps. The kNN falls to or below "
          "its random-init value, because features that are the same for everything cannot tell classes apart.",
          run={"method": "simclr", "dataset": "shapes", "max_seconds": 30, "options": {"negatives": False}}),
    _step("BYOL uses no negatives at all, yet its reference run learned. Put it beside SimCLR's on the Compare "
          "page.",
          "What keeps BYOL away from the collapse you just saw?",
          ("A larger batch than SimCLR's",
           "A predictor on the online branch, trained to match a target network that is a slow moving average",
           "A higher temperature", "A few labels mixed into its loss"), 1,
          "The online network has to predict what a lagging copy of itself outputs for the other view. That "
          "asymmetry keeps the constant solution out of reach in practice. Remove the predictor (try it in the "
          "Collapse lab) and BYOL collapses like SimCLR without negatives.",
          "views/compare.py", {"runs": "ref-shapes-simclr,ref-shapes-byol"}),
    _step("Open the Collapse lab, choose \"DINO without centring\" and train the broken and the intact variant "
          "(a few hundred steps each, so give it some minutes). The signal is the entropy of the teacher's "
          "output.",
          "Without centring, what happens to DINO's teacher?",
          ("Its output spreads evenly over all prototypes",
           "One prototype wins for every image, and its entropy falls towards 0",
           "It stops updating", "It turns into a contrastive loss"), 1,
          "Centring subtracts a running mean from the teacher's outputs, so no single prototype can win for all "
          "images; sharpening (a teacher temperature below the student's) pulls the other way, against a flat "
          "output. Each fails in its own direction alone: no centring, one prototype takes all; no sharpening, "
          "the output goes uniform.",
          "views/collapse.py"),
))

MASKING = Lesson("masking", "Masked modelling",
                 "Hide patches and find out how much context a masked autoencoder needs, why MAE hides so much, "
                 "and how the way you hide changes the task.", (
    _step("The masking tab draws one mask of each kind at the same ratio on an 8x8 patch grid and measures, for "
          "every hidden patch, how far away the nearest visible patch is.",
          "At 75%, which strategy leaves the hidden patches furthest from any visible one?",
          ("Random", "Block", "Grid", "None: all three hide the same share, so they tie"), 1,
          "All three hide three quarters of the patches, but a block hides whole regions, so some patches lie "
          "several steps from any context. A grid keeps a visible neighbour beside every hidden patch and "
          "turns the task into interpolation. Random masking lies in between, with context scattered over the "
          "whole image.",
          "views/concepts.py", {"tab": "masking", "ratio": "0.75", "seed": "0"}),
    _step("The MAE page opens the coffee photo with a quarter of its patches hidden at random. Note the PSNR on "
          "the hidden patches, then drag the mask ratio to 0.90 and read it again.",
          "What happens to the reconstruction as the ratio rises from 0.25 to 0.90?",
          ("It gets sharper and the PSNR goes up",
           "It gets blurrier and the PSNR goes down, since there is less context to go on",
           "Nothing changes, since the encoder only ever sees the visible patches",
           "The page refuses ratios above 0.75"), 1,
          "With fewer visible patches each hidden one must be guessed from context further away. A squared-"
          "error loss meets that uncertainty with a smooth average, so detail goes. MAE still trains at 75% on "
          "purpose: when neighbours give the answer away, the encoder has no need to understand the scene.",
          "views/mae.py", {"image": "gallery", "photo": "coffee", "ratio": "0.25", "mask": "random", "seed": "0"}),
    _step("Same photo, 75% hidden, now in blocks. Switch the Masking radio between block and random and compare "
          "the PSNR.",
          "At the same ratio, which masking is harder for this model?",
          ("Block: its PSNR is lower than random masking's", "Random: its PSNR is lower than block masking's",
           "Neither: the same share is hidden, so the PSNR is the same",
           "Grid: it hides whole rows"), 0,
          "A block removes a whole region, so its centre is far from anything the model can see, and the "
          "reconstruction there is little more than a guess from the surroundings' colours. Random masking "
          "leaves visible patches scattered everywhere, so every hidden patch has some context nearby.",
          "views/mae.py", {"image": "gallery", "photo": "coffee", "ratio": "0.75", "mask": "block", "seed": "0"}),
    _step("One design choice makes MAE cheap to train: what its encoder is given.",
          "With 75% of the patches hidden, what does the MAE encoder process?",
          ("Every patch, with the hidden ones set to zero",
           "Only the visible quarter; the mask tokens join later, in the small decoder",
           "Only the hidden patches", "Half of the patches, chosen at random"), 1,
          "The encoder never sees a mask token: it reads the visible quarter alone, so it costs a fraction of "
          "a full pass and can be made large. A light decoder then places mask tokens at the hidden "
          "positions and predicts their pixels; the loss counts only those. After pre-training the decoder is "
          "discarded and the encoder is kept."),
    _step("The lab ships a reference MAE trained on shapes for five minutes. Open it on the Runs page and "
          "read its kNN chart against the dashed random-init line; SimCLR's reference (ref-shapes-simclr) "
          "gained tens of points in a run of half that time.",
          "How does MAE's frozen kNN compare with SimCLR's after a short CPU run?",
          ("Far ahead: reconstruction is the stronger signal",
           "Far behind: a few points above its random-init line", "Exactly level with SimCLR's",
           "It cannot be measured, because MAE has no encoder"), 1,
          "MAE's features ripen slowly: the paper trains for hundreds of epochs and usually fine-tunes the "
          "encoder rather than reading it frozen. A pixel-reconstruction objective also keeps detail a "
          "nearest-neighbour vote does not need, while a contrastive loss is built to make views of one "
          "object land close together, which is exactly what kNN rewards.",
          "views/runs.py", {"run": "ref-shapes-mae"}),
))

PRETEXT = Lesson("pretext", "Pretext tasks and where features live",
                 "See what a hand-made pretext task asks of a network, then find which layer of the network "
                 "holds the features worth keeping.", (
    _step("On the Pretext tasks page, choose rotation in the Task box. The preview shows the four inputs the "
          "network sees and the label it must give each.",
          "Rotation prediction is a classification. Into how many classes, and what is chance?",
          ("2 classes, 50%", "4 classes, 25%", "8 classes, 12.5%", "360 classes, under 0.3%"), 1,
          "The image is turned by 0, 90, 180 or 270 degrees and the network names the turn. To know which way "
          "is up it has to find the object and recall its usual pose. Relative position, by contrast, picks one "
          "of 8 neighbours, where chance is 12.5%.",
          "views/pretext.py"),
    _step("Now choose colorization: the network receives the lightness of the image and predicts its colours. "
          "Remember how shapes is drawn: the colour of each object is random, independent of its class.",
          "What does that mean for colorization as a pretext task on shapes?",
          ("It is the best task there, because colour is easy to see",
           "The colours cannot be inferred from the gray shape, so the task teaches little about the classes",
           "It is the same as rotation prediction", "It needs labels on shapes"), 1,
          "Colorization works on photos because grass, sky and skin have typical colours that only a network "
          "that recognises them can guess. On shapes nothing in the gray image predicts the colour, so the "
          "task's best answer is a guess, and what it learns is colour, the very thing a class-level kNN must "
          "ignore. A pretext task only helps when solving it requires the knowledge you want.",
          "views/pretext.py"),
    _step("The reference run of relative position opens on the Runs page. Find the chart \"kNN gain over random "
          "init, stage by stage\": one line per stage of the convnet, from the stem to its last stage.",
          "Which stage ends up with the largest gain over random init?",
          ("The last stage, as for every method", "A stage before the last",
           "None: every line stays below zero", "All stages gain the same"), 1,
          "The last stage is trained hardest towards the task's own labels (which neighbour, which turn), so it "
          "specialises to them; the stage before keeps the more general parts and textures. Linear probes of "
          "rotation, jigsaw and colorization networks show the same bump in the middle layers. Reading only the "
          "last layer can make a pretext task look worse than what it learned.",
          "views/runs.py", {"run": "ref-shapes-relpos"}),
    _step("Now SimCLR's reference run, the same chart.",
          "Where is SimCLR's largest gain?",
          ("In the stem", "In a middle stage", "In the last stage: the gain grows with depth",
           "Nowhere: SimCLR does not beat random init"), 2,
          "A contrastive loss asks the whole network for features that ignore the augmentations and separate "
          "images, which is close to what a class-level kNN needs, so the deepest stage, nearest the loss, is "
          "also the most useful. Its specialisation to the loss itself is left to the projection head, which "
          "comes next.",
          "views/runs.py", {"run": "ref-shapes-simclr"}),
    _step("SimCLR computes its loss on z = g(h): a small projection head g on top of the encoder output h.",
          "Which of the two do we keep for downstream tasks?",
          ("z, since the loss was computed on it",
           "h, the encoder output before the projection head",
           "Both, concatenated", "Neither: we keep only the loss value"), 1,
          "Making features invariant to crops and colours throws information away. The head takes that loss of "
          "information on itself, so h can keep more, such as colour or orientation, that a later task may need. "
          "After pre-training the head is dropped, much as the over-specialised last stage of a pretext network "
          "is best skipped."),
))

LABELS = Lesson("labels", "Few labels",
                "Why pre-train without labels when some labels exist, and how to read what a network learned "
                "with 1%, 10% or all of them.", (
    _step("A hospital has 5 million unlabelled chest X-rays and 2,000 that experts have labelled with one of "
          "two diagnoses.",
          "Which plan uses both sets best?",
          ("Train a network from scratch on the 2,000 labelled scans",
           "Pre-train an encoder without labels on all the scans, then fit it on the 2,000 labelled ones",
           "Have all 5 million scans labelled first",
           "Pre-train on the 2,000 labelled scans and ignore the rest"), 1,
          "Two thousand images are far too few to learn what X-rays look like, and a network trained on them "
          "alone overfits. The unlabelled scans can teach anatomy, normal variation and scanner quirks at no "
          "labelling cost; the scarce labels then only need to teach the diagnosis, first with a linear probe "
          "as a check, then by fine-tuning."),
    _step("Start a 30-second SimCLR run on shapes and open it on the Train page. A kNN accuracy appears while it "
          "trains, and shapes comes with class labels.",
          "Does the training itself use those labels?",
          ("Yes: the loss compares predictions with them",
           "No: the labels only serve to measure, as a kNN bank and held-out test images",
           "Only for the first few steps", "Only to train the projection head"), 1,
          "The loss sees two views of each image and nothing else. Every few seconds the monitor embeds a "
          "labelled bank and some held-out images with the current backbone and lets each test image vote with "
          "its nearest neighbours: a measurement that never changes the weights.",
          run={"method": "simclr", "dataset": "shapes", "max_seconds": 30}),
    _step("On the Embeddings page, take the features from the run ref-shapes-simclr (SimCLR's reference run), "
          "keep shapes as the labelled data and press Compute scores. The table reads the frozen features with "
          "a kNN and with linear probes fitted on 1%, 10% and 100% of the labels.",
          "What does a linear probe train?",
          ("The whole network, at a small learning rate",
           "One linear classifier on top of features that stay frozen",
           "Nothing: it is a vote among nearest neighbours", "A new projection head"), 1,
          "The encoder does not move, so the score reflects only how linearly separable its features already "
          "are: the fair way to compare pre-training methods. With 1% of the labels it shows how much a method "
          "leaves for the labels to do: a good encoder needs only a few examples per class.",
          "views/embeddings.py"),
    _step("The last choice comes once you pick an encoder for a real task.",
          "When do you fine-tune rather than stop at a linear probe?",
          ("Never: fine-tuning always overfits",
           "When you want the best accuracy on your task and can let the encoder change, at a small learning rate",
           "Only when you have no labels at all", "Only to compare two pre-training methods fairly"), 1,
          "Fine-tuning updates the encoder along with a new head and usually wins on the task itself; a probe "
          "keeps the encoder fixed and is the clean measure of what pre-training produced. The two can rank "
          "encoders differently, so papers report probes to compare methods and fine-tuning for final accuracy.",
          "views/embeddings.py"),
))

LESSONS: tuple[Lesson, ...] = (VIEWS, COLLAPSE, MASKING, PRETEXT, LABELS)
BY_KEY: dict[str, Lesson] = {lesson.key: lesson for lesson in LESSONS}

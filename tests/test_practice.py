"""The Practice page: its content's invariants, the scoring, the printable export, the cosine numbers, and the page
itself in AppTest (a match-the-method submission with a known mix of right and wrong answers)."""

import html
import math
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import open_app
from sslcore import practice
from sslcore.methods import METHODS

ROOT = Path(__file__).parents[1]


# --- content ----------------------------------------------------------------------------------------

def test_counts_meet_the_brief():
    assert len(practice.SELF_CHECK) >= 7
    assert len(practice.MATCH_ITEMS) >= 8
    assert len(practice.FLASHCARDS) >= 12


def test_no_duplicates():
    for values in ([q.id for q in practice.SELF_CHECK], [q.prompt for q in practice.SELF_CHECK],
                   [m.id for m in practice.MATCH_ITEMS], [m.description for m in practice.MATCH_ITEMS],
                   [c.question for c in practice.FLASHCARDS]):
        assert len(values) == len(set(values)), values


def test_match_answers_are_registered_methods_and_labels_cover_the_registry():
    assert set(practice.METHOD_LABELS) == set(METHODS)
    for item in practice.MATCH_ITEMS:
        assert item.method in METHODS, item
    # every registered method is asked about at least once
    assert {item.method for item in practice.MATCH_ITEMS} == set(METHODS)


def test_aliases_are_documented_and_unambiguous():
    labels = {label.lower(): name for name, label in practice.METHOD_LABELS.items()}
    for alias, name in practice.ALIASES.items():
        assert name in METHODS, alias
        assert alias == alias.lower().strip() and alias not in METHODS, alias  # registry names need no alias
        assert labels.get(alias, name) == name, alias
    assert practice.resolve_method("  MoCo   V2 ") == "moco"
    assert practice.resolve_method("Context prediction") == "relpos"
    assert practice.resolve_method("Relative position") == "relpos"  # a label
    assert practice.resolve_method("mae") == "mae"
    assert practice.resolve_method("CPC") is None and practice.resolve_method(None) is None


def test_each_explanation_is_one_sentence_and_every_text_is_filled():
    for item in practice.MATCH_ITEMS:
        assert item.why.endswith(".") and not re.search(r"[.!?]\s+[A-Z]", item.why), item.why
        assert item.description and len(item.description) < 200
    for q in practice.SELF_CHECK:
        assert q.prompt and len(q.answer) > 80
    for c in practice.FLASHCARDS:
        assert c.question and c.answer


def test_self_check_pages_exist_in_the_app():
    from ui.practice import PAGES

    app = (ROOT / "app.py").read_text()
    routes = dict(re.findall(r'st\.Page\("([^"]+)", title="([^"]+)"', app))
    for q in practice.SELF_CHECK:
        assert q.page in PAGES, q
    for title, (path, icon) in PAGES.items():
        assert (ROOT / path).exists() and routes[path] == title
        assert f'st.Page("{path}", title="{title}", icon="{icon}")' in app
    assert routes["views/practice.py"] == "Practice"


def test_engine_module_does_not_import_streamlit():
    code = "import sys, sslcore.practice; assert 'streamlit' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


# --- scoring ----------------------------------------------------------------------------------------

def right_answers() -> dict[str, str]:
    return {item.id: item.method for item in practice.MATCH_ITEMS}


def wrong_answers() -> dict[str, str]:
    """Each item answered with the next item's method: all wrong, since every method appears once."""
    methods = [item.method for item in practice.MATCH_ITEMS]
    return {item.id: methods[(i + 1) % len(methods)] for i, item in enumerate(practice.MATCH_ITEMS)}


def test_all_right():
    s = practice.score(right_answers())
    assert (s.correct, s.total, s.fraction, str(s)) == (10, 10, 1.0, "10 / 10")
    assert all(r.correct and r.feedback.startswith("Right") for r in s.results)


def test_all_wrong_and_unanswered():
    s = practice.score(wrong_answers())
    assert (s.correct, s.total, str(s)) == (0, 10, "0 / 10")
    assert all(r.feedback.startswith("Not ") and r.item.why in r.feedback for r in s.results)
    blank = practice.score({})
    assert str(blank) == "0 / 10" and all(r.given is None and r.feedback.startswith("No answer") for r in blank.results)


def test_partial_score_with_exact_numbers():
    answers = right_answers()
    ids = [item.id for item in practice.MATCH_ITEMS]
    wrong = wrong_answers()
    for i in ids[:3]:
        answers[i] = wrong[i]  # three wrong
    answers[ids[3]] = None  # one blank
    answers[ids[4]] = practice.METHOD_LABELS[practice.MATCH_ITEMS[4].method]  # a label counts as the method
    answers[ids[5]] = "nonsense"  # a name that is no method: wrong, and shown as given
    s = practice.score(answers)
    assert (s.correct, s.total, s.fraction, str(s)) == (5, 10, 0.5, "5 / 10")
    assert [r.correct for r in s.results] == [False, False, False, False, True, False, True, True, True, True]
    assert s.results[5].given == "nonsense" and "Not nonsense" in s.results[5].feedback
    assert s.results[0].explanation == practice.MATCH_ITEMS[0].why


def test_score_follows_the_given_order_and_rejects_unknown_items():
    order = practice.shuffled(practice.MATCH_ITEMS, 3)
    s = practice.score(right_answers(), order)
    assert [r.item for r in s.results] == list(order)
    with pytest.raises(ValueError, match="no match item"):
        practice.score({"cpc": "simclr"})


def test_shuffle_is_a_seeded_permutation():
    a, b = practice.shuffled(practice.MATCH_ITEMS, 7), practice.shuffled(practice.MATCH_ITEMS, 7)
    assert a == b and sorted(a, key=lambda m: m.id) == sorted(practice.MATCH_ITEMS, key=lambda m: m.id)
    orders = {tuple(m.id for m in practice.shuffled(practice.MATCH_ITEMS, s)) for s in range(5)}
    assert len(orders) > 1


# --- flashcards export ------------------------------------------------------------------------------

def test_exports_contain_every_card():
    md = practice.flashcards_markdown()
    page = practice.flashcards_html()
    for i, card in enumerate(practice.FLASHCARDS, 1):
        assert f"## {i}. {card.question}" in md and card.answer in md
        assert html.escape(card.question) in page and html.escape(card.answer) in page
    assert page.count('<section class="card">') == len(practice.FLASHCARDS)
    assert "break-after:page" in page  # prints one card per page


def test_export_escapes_html():
    page = practice.flashcards_html([practice.Flashcard("a < b?", "<script>x</script>")])
    assert "<script>" not in page and "&lt;script&gt;" in page


# --- cosine -----------------------------------------------------------------------------------------

def test_cosine_exercise_matches_hand_computation():
    w = practice.work_cosine(*practice.COSINE_EXERCISE)
    assert w.anchor == (2, 1) and w.positive == (3, 2) and w.negative == (-2, 1)
    assert w.cos_positive == pytest.approx(8 / math.sqrt(65))  # (2*3 + 1*2) / (sqrt(5) * sqrt(13))
    assert round(w.cos_positive, 3) == 0.992
    assert w.cos_negative == pytest.approx(-0.6)  # (2*(-2) + 1*1) / (sqrt(5) * sqrt(5)) = -3/5
    steps = w.steps()
    assert steps[0] == "|a| = sqrt(2² + 1²) = sqrt(5) ≈ 2.236"
    assert steps[2] == "|b| = sqrt((-2)² + 1²) = sqrt(5) ≈ 2.236"
    assert steps[3].endswith("= 8 / 8.062 ≈ 0.992")
    assert steps[4] == "cos(a, b) = (2·(-2) + 1·1) / (2.236 · 2.236) = -3 / 5.000 ≈ -0.600"


def test_cheatsheet_pair_and_errors():
    w = practice.work_cosine([1, 0], [0.9, 0.4], [-0.5, 0.8])
    assert w.cos_positive == pytest.approx(0.9 / math.sqrt(0.97))
    assert w.cos_negative == pytest.approx(-0.5 / math.sqrt(0.89))
    assert "sqrt(0.97)" in w.steps()[1]
    with pytest.raises(ValueError, match="zero vector"):
        practice.work_cosine([0, 0], [1, 0], [0, 1])
    with pytest.raises(ValueError, match="one length"):
        practice.work_cosine([1, 0], [1, 0, 0], [0, 1])
    assert practice.check_answer(0.992, w.cos_positive) is False
    assert practice.check_answer(0.914, w.cos_positive) and not practice.check_answer(None, 0.9)


# --- the page ---------------------------------------------------------------------------------------

@pytest.fixture
def at():
    return open_app("views/practice.py")


def metric(at, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def test_page_renders_every_tab(at):
    assert at.title[0].value == "Practice"
    assert [t.label for t in at.tabs] == ["Self-check", "Match the method", "Flashcards", "Cosine"]
    assert len(at.expander) >= len(practice.SELF_CHECK)
    assert len([s for s in at.selectbox if s.key.startswith("match_")]) == len(practice.MATCH_ITEMS)
    assert metric(at, "cos(a, a+)") == "0.992" and metric(at, "cos(a, b)") == "-0.600"


def test_match_the_method_form_shows_the_score(at):
    answers = wrong_answers()
    right = [item.id for item in practice.MATCH_ITEMS][:6]
    for i in right:
        answers[i] = right_answers()[i]
    for item_id, method in answers.items():
        at.selectbox(key=f"match_{item_id}").set_value(method)
    assert not [m for m in at.metric if m.label == "Score"]  # nothing scored before Submit
    next(b for b in at.button if b.label == "Submit").click()
    at.run()
    assert not at.exception
    assert metric(at, "Score") == "6 / 10"
    assert len(at.success) == 6 and len(at.error) == 4
    assert all(any(practice.MATCH_ITEMS[k].why in s.value for s in at.success) for k in range(6))


def test_flashcards_flip_and_print(at):
    caption = lambda: [c.value for c in at.caption if c.value.startswith("Card ")]  # noqa: E731
    first, second = practice.FLASHCARDS[:2]
    assert caption() == [f"Card 1 of {len(practice.FLASHCARDS)}"]
    assert not any(first.answer in m.value for m in at.markdown)
    at.button(key="card_flip").click().run()
    assert any(first.answer in m.value for m in at.markdown)
    at.button(key="card_next").click().run()
    assert caption() == [f"Card 2 of {len(practice.FLASHCARDS)}"]
    shown = [m.value for m in at.markdown]
    assert any(second.question in v for v in shown) and not any(second.answer in v for v in shown)
    at.button(key="card_prev").click().run()
    at.button(key="card_prev").click().run()  # wraps round to the last card
    assert caption() == [f"Card {len(practice.FLASHCARDS)} of {len(practice.FLASHCARDS)}"]
    at.radio(key="cards_mode").set_value("Printable").run()
    assert not at.exception
    shown = "\n".join(m.value for m in at.markdown)
    assert all(c.question in shown and c.answer in shown for c in practice.FLASHCARDS)
    assert len(at.get("download_button")) == 2


def test_cosine_tab_checks_a_typed_answer(at):
    at.number_input(key="pc_guess_pos").set_value(0.992).run()
    at.number_input(key="pc_guess_neg").set_value(0.6).run()
    assert [s.value for s in at.success] == ["Right, to three decimals."]
    assert len(at.warning) == 1
    at.number_input(key="pc_0").set_value(1.0).run()  # a = [1, 1]: the computed answer follows the inputs
    assert metric(at, "cos(a, a+)") == f"{5 / math.sqrt(2) / math.sqrt(13):.3f}"
    at.number_input(key="pc_0").set_value(0.0)
    at.number_input(key="pc_1").set_value(0.0).run()
    assert "zero vector" in at.error[0].value

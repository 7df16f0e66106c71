"""Widgets of the Practice page: links to the lab pages, the match-the-method form, the flashcard deck.

Content and scoring are sslcore.practice's; here they only become widgets and session state.
"""

from __future__ import annotations

from collections.abc import Sequence

import streamlit as st

from sslcore import practice

# A self-check question's page (its title in app.py) -> (view file, menu icon).
PAGES: dict[str, tuple[str, str]] = {
    "Augmentations": ("views/augmentations.py", ":material/photo_library:"),
    "Pretext tasks": ("views/pretext.py", ":material/extension:"),
    "Train": ("views/train.py", ":material/model_training:"),
    "Concepts": ("views/concepts.py", ":material/school:"),
    "DINO attention": ("views/attention.py", ":material/visibility:"),
    "MAE reconstructions": ("views/mae.py", ":material/grid_view:"),
    "Embeddings": ("views/embeddings.py", ":material/scatter_plot:"),
}
_ANSWERS = "practice_match_answers"  # item id -> the method submitted (None: left blank)
_CARD = "practice_card"  # index of the flashcard on show
_SHOWN = "practice_card_shown"  # whether its answer is revealed


def page_link(title: str) -> None:
    """A link to the lab page called ``title``."""
    path, icon = PAGES[title]
    st.page_link(path, label=f"See it on {title}", icon=icon)


def match_the_method(seed: int) -> practice.Score | None:
    """One selectbox per description (in the order of ``seed``) in one form; after Submit, the score and a
    line of feedback per item. The last submission stays on show across reruns."""
    items = practice.shuffled(practice.MATCH_ITEMS, seed)
    names = sorted(practice.METHOD_LABELS, key=practice.METHOD_LABELS.get)
    with st.form("practice_match"):
        for i, item in enumerate(items, 1):
            st.selectbox(f"**{i}.** {item.description}", names, index=None, format_func=practice.METHOD_LABELS.get,
                         placeholder="Choose a method", key=f"match_{item.id}")
        if st.form_submit_button("Submit", type="primary"):
            st.session_state[_ANSWERS] = {item.id: st.session_state.get(f"match_{item.id}") for item in items}
    answers = st.session_state.get(_ANSWERS)
    if answers is None:
        return None
    result = practice.score(answers, items)
    st.metric("Score", str(result), f"{result.fraction:.0%} right", delta_color="off", delta_arrow="off")
    for i, r in enumerate(result.results, 1):
        if r.correct:
            st.success(f"**{i}.** {r.feedback}", icon=":material/check_circle:")
        else:
            st.error(f"**{i}.** {r.feedback}", icon=":material/cancel:")
    return result


def _move(step: int, count: int) -> None:
    st.session_state[_CARD] = (st.session_state.get(_CARD, 0) + step) % count
    st.session_state[_SHOWN] = False


def _flip() -> None:
    st.session_state[_SHOWN] = not st.session_state.get(_SHOWN, False)


def flashcard_deck(cards: Sequence[practice.Flashcard]) -> None:
    """One card at a time: its question, its answer once revealed, and Previous / Reveal / Next."""
    i = st.session_state.get(_CARD, 0) % len(cards)
    shown = st.session_state.get(_SHOWN, False)
    with st.container(border=True):
        st.caption(f"Card {i + 1} of {len(cards)}")
        st.markdown(f"#### {cards[i].question}")
        st.markdown(cards[i].answer if shown else "*Answer it in your head, then reveal.*")
    prev, flip, nxt = st.columns(3)
    prev.button("Previous", key="card_prev", icon=":material/arrow_back:", width="stretch",
                on_click=_move, args=(-1, len(cards)))
    flip.button("Hide" if shown else "Reveal", key="card_flip", type="primary", width="stretch", on_click=_flip)
    nxt.button("Next", key="card_next", icon=":material/arrow_forward:", width="stretch",
               on_click=_move, args=(1, len(cards)))


def printable_cards(cards: Sequence[practice.Flashcard]) -> None:
    """Every card as a plain block (question, then answer), and the full set to download."""
    left, right = st.columns(2)
    left.download_button("Download for printing (HTML, one card per page)", practice.flashcards_html(cards),
                         "ssl-flashcards.html", "text/html", key="cards_html", on_click="ignore",
                         icon=":material/print:")
    right.download_button("Download as Markdown", practice.flashcards_markdown(cards), "ssl-flashcards.md",
                          "text/markdown", key="cards_md", on_click="ignore", icon=":material/download:")
    for i, card in enumerate(cards, 1):
        with st.container(border=True):
            st.markdown(f"**{i}. {card.question}**")
            st.markdown(card.answer)

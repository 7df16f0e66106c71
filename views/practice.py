import streamlit as st

from sslcore.practice import COSINE_EXERCISE, FLASHCARDS, SELF_CHECK, check_answer, work_cosine
from ui import practice as up

st.title("Practice")
st.caption("Check yourself after a session in the lab: questions with model answers and a link to the page where "
           "you can watch the idea at work, a quiz on which method is which, flashcards, and a cosine exercise "
           "to do by hand.")
check_tab, match_tab, cards_tab, cos_tab = st.tabs(["Self-check", "Match the method", "Flashcards", "Cosine"])

with check_tab:
    st.caption(f"{len(SELF_CHECK)} questions. Say or write your answer first, then open it.")
    for i, q in enumerate(SELF_CHECK, 1):
        st.markdown(f"**{i}.** {q.prompt}")
        with st.expander("Model answer"):
            st.markdown(q.answer)
            up.page_link(q.page)

with match_tab:
    st.caption("Pick the method each description fits, then submit: every answer comes back with the reason.")
    seed = st.number_input("Question order", 0, 9999, 0, key="match_seed",
                           help="A class that enters the same number sees the items in the same order.")
    up.match_the_method(int(seed))

with cards_tab:
    mode = st.radio("View", ["One card at a time", "Printable"], horizontal=True, key="cards_mode",
                    label_visibility="collapsed")
    if mode == "Printable":
        up.printable_cards(FLASHCARDS)
    else:
        up.flashcard_deck(FLASHCARDS)

with cos_tab:
    anchor, positive, negative = COSINE_EXERCISE
    st.markdown("Two augmentations of image A give the features **a** and **a+** (a positive pair); another "
                "photo gives **b** (a negative). Work out both cosines with "
                "cos(u, v) = u·v / (‖u‖ ‖v‖), then say which one a contrastive loss pushes up and which down.")
    labels = ["a x", "a y", "a+ x", "a+ y", "b x", "b y"]
    defaults = [*anchor, *positive, *negative]
    xy = [col.number_input(label, value=float(v), step=0.1, key=f"pc_{k}")
          for k, (col, label, v) in enumerate(zip(st.columns(6), labels, defaults))]
    try:
        worked = work_cosine(xy[0:2], xy[2:4], xy[4:6])
    except ValueError as e:
        st.error(f"{e}: change the zero vector.")
        st.stop()
    c1, c2 = st.columns(2)
    guess_pos = c1.number_input("Your cos(a, a+)", -1.0, 1.0, None, 0.001, "%.3f", key="pc_guess_pos")
    guess_neg = c2.number_input("Your cos(a, b)", -1.0, 1.0, None, 0.001, "%.3f", key="pc_guess_neg")
    for col, guess, value in ((c1, guess_pos, worked.cos_positive), (c2, guess_neg, worked.cos_negative)):
        if guess is not None:
            if check_answer(guess, value):
                col.success("Right, to three decimals.")
            else:
                col.warning("Not yet: recheck the dot product and the two lengths.")
    with st.expander("Worked answer"):
        st.code("\n".join(worked.steps()), language=None)
        m1, m2 = st.columns(2)
        m1.metric("cos(a, a+)", f"{worked.cos_positive:.3f}")
        m2.metric("cos(a, b)", f"{worked.cos_negative:.3f}")
        st.markdown("Training raises the first towards 1 and lowers the second (towards -1); repeated over "
                    "every pair in every batch, views of one image end up close together and different images "
                    "far apart.")
        up.page_link("Concepts")

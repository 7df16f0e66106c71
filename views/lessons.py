import streamlit as st

from ui import lessons as ul

st.title("Lessons")
st.caption("Short guided tours of the lab. Each step opens a page with the right settings (the link carries them), "
           "sometimes starts a small run, and asks what you see; every answer comes back with the reason. Your "
           "place in each lesson is kept while you visit the other pages.")
lesson = ul.pick_lesson()
st.markdown(f"*{lesson.goal}*")
index = ul.position(lesson)
ul.progress(lesson, index)

if index < len(lesson.steps):
    step = lesson.steps[index]
    with st.container(border=True):
        st.markdown(step.text)
        ul.page_link(step)
        ul.run_button(lesson, index, step)
    ul.question(lesson, index, step)
    ul.navigation(lesson, index)
else:
    ul.completion(lesson)
ul.publish(lesson)

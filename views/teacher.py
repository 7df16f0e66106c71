import streamlit as st

from ui.queue import queue_table
from ui.teacher import participant_table, presets_form, queue_controls, reset_panel, unlock

st.title("Teacher")
if not unlock():
    st.stop()
st.subheader("Queue")
queue_controls()
queue_table("teacher")
st.subheader("Participants")
participant_table()
st.subheader("Class presets")
presets_form()
st.subheader("Reset between classes")
reset_panel()

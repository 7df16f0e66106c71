import streamlit as st

from ui.collapse import experiment_panel, launch_form, pick_ablation, pick_experiment

st.title("Collapse lab")
st.caption("Every joint-embedding method could lower its loss by giving every image the same embedding. Each has "
           "a device against that. Take one away, train the broken and the intact variant on the same data and "
           "seed, and watch which one collapses.")
ablation = pick_ablation()
launched = launch_form(ablation)
group_id = pick_experiment(ablation, launched)
if group_id is None:
    st.info("No experiment with this ablation yet: start one above.")
else:
    experiment_panel(group_id)

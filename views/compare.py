import streamlit as st

from sslcore.compare import launch_race, race_configs
from ui.compare import comparison_table, curves, embeddings, label, pick_race, race_form, race_panel
from ui.state import run_store

st.title("Compare")
compare_tab, race_tab = st.tabs(["Compare runs", "Race"])

with race_tab:
    st.caption("A race trains several methods on the same data, backbone, budget and seed. On CPU they run one "
               "after another from one queue, so each gets the whole machine; on a GPU they train together. "
               "Races stay in the run store: pick any past one below.")
    submitted, launched = race_form(), None
    if submitted is not None:
        methods, base = submitted
        launched, _ = launch_race(race_configs(methods, base), run_store())
        st.query_params["race"] = launched
    group_id = pick_race(select=launched)
    if group_id is None:
        st.info("No races yet: start one above.")
    else:
        race_panel(group_id)

with compare_tab:
    records = run_store().list()
    if not records:
        st.info("No runs yet: train some on the Train page, or start a race.")
    else:
        by_id = {r.id: r for r in records}
        in_race = [r.id for r in records if group_id and r.group_id == group_id]
        default = in_race or [r.id for r in records[:2]]
        chosen = st.multiselect("Runs to compare", list(by_id), default=default, key="compare_runs",
                                format_func=lambda i: f"{label(by_id[i])} · {by_id[i].dataset} · {by_id[i].status}")
        picked = [by_id[i] for i in chosen]
        if picked:
            comparison_table(picked, "compare")
            curves(picked, "compare")
            embeddings(picked, "compare")

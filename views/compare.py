import streamlit as st

from sslcore.compare import race_configs
from ui.compare import comparison_table, curves, embeddings, label, pick_race, race_form, race_panel
from ui.queue import start_race
from ui.state import run_store
from ui.urlstate import fit, publish, restore

st.title("Compare")
restore("compare")
compare_tab, race_tab = st.tabs(["Compare runs", "Race"])

with race_tab:
    st.caption("A race trains several methods on the same data, backbone, budget and seed. They wait in the "
               "queue like any run: with one slot they train one after another, each with the whole machine; with "
               "more slots (more cores, GPUs) side by side. Races stay in the run store: pick any past one below.")
    submitted, launched = race_form(), None
    if submitted is not None:
        launched = start_race(race_configs(*submitted))
        if launched:
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
        fit("compare_runs", by_id, "this run store")
        chosen = st.multiselect("Runs to compare", list(by_id), default=default, key="compare_runs",
                                format_func=lambda i: f"{label(by_id[i])} · {by_id[i].dataset} · {by_id[i].status}")
        picked = [by_id[i] for i in chosen]
        if picked:
            comparison_table(picked, "compare")
            curves(picked, "compare")
            embeddings(picked, "compare")
publish("compare")

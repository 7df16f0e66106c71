import streamlit as st

from ui.forms import run_config_form
from ui.panels import live_run
from ui.queue import queue_table, submit_run
from ui.state import run_store
from ui.urlstate import publish, restore

st.title("Train")
st.caption("Runs wait in one queue and train in worker processes of their own, so they go on through reruns, "
           "page switches, reloads and server restarts. The time budget counts training only; kNN checks pause "
           "the clock.")
restore("train")
cfg = run_config_form()
if cfg is not None and (run_id := submit_run(cfg)) is not None:
    st.session_state["run_id"] = run_id
    st.query_params["run"] = run_id
publish("train")

run_id = st.session_state.get("run_id") or st.query_params.get("run")
if run_id:
    try:
        record = run_store().get(run_id)
    except (KeyError, ValueError):
        st.warning(f"Run {run_id} is not in the store.")
    else:
        st.subheader(f"Run {run_id}")
        st.caption(f"{record.method} on {record.dataset}, backbone {record.backbone}")
        live_run(run_id)
        st.page_link("views/runs.py", label="All runs", icon=":material/list:")
with st.expander("The queue", expanded=False):
    queue_table("train")

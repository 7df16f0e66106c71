import streamlit as st

from sslcore.runner import launch
from ui.forms import run_config_form
from ui.panels import live_run
from ui.state import run_store

st.title("Train")
st.caption("Runs train in a worker process of their own: they go on through reruns, page switches, reloads "
           "and server restarts. The time budget counts training only; kNN checks pause the clock.")
cfg = run_config_form()
if cfg is not None:
    run_id = launch([cfg], run_store())[0]
    st.session_state["run_id"] = run_id
    st.query_params["run"] = run_id

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

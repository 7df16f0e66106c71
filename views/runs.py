import streamlit as st

from sslcore.export import run_archive
from ui.panels import live_run, runs_table
from ui.queue import queue_table
from ui.state import run_store

st.title("Runs")
st.caption("Every run in the store, everyone's: reference runs ship with the lab; a run's owner and the "
           "teacher can stop, resume or delete it, everyone else can look and compare.")
queue_table("runs")
runs = run_store().list()
if not runs:
    st.info("No runs yet: start one on the Train page.")
    st.stop()
runs_table(runs, "runs")
ids = [r.id for r in runs]
if st.session_state.get("runs_pick") not in ids:
    st.session_state.pop("runs_pick", None)  # deleted meanwhile
wanted = st.query_params.get("run")
if wanted in ids and "runs_pick" not in st.session_state:
    st.session_state["runs_pick"] = wanted  # ?run=<id> opens that run
run_id = st.selectbox("Run", ids, key="runs_pick")
st.query_params["run"] = run_id
live_run(run_id, "runs", allow_delete=True)
folder = run_store().run_dir(run_id)
if (folder / "checkpoint.safetensors").exists():  # zipped on the click, not on every rerun of the page
    st.download_button("Download run (zip: checkpoint + config + metrics)", lambda: run_archive(folder),
                       f"{run_id}.zip", "application/zip", on_click="ignore")
with st.expander("Config and summary"):
    record = run_store().get(run_id)
    st.json({"config": record.config, "summary": record.summary})

import streamlit as st

from sslcore.runs import ACTIVE
from ui.panels import draw_run, protocol_text, run_zip
from ui.state import run_store

st.title("Runs")
runs = run_store().list()
if not runs:
    st.info("No runs yet: start one on the Train page.")
    st.stop()


def fmt(x, spec=".1f"):
    return "" if x is None else format(x, spec)


st.dataframe([{"run": r.id, "method": r.method, "dataset": r.dataset, "backbone": r.backbone, "status": r.status,
               "steps": r.summary.get("steps"), "seconds": r.summary.get("seconds"),
               "kNN top-1 %": fmt(r.summary.get("knn_top1")), "random init %": fmt(r.summary.get("knn_top1_random_init")),
               "protocol": protocol_text(r.summary)} for r in runs], hide_index=True)
run_id = st.selectbox("Run", [r.id for r in runs])
record = run_store().get(run_id)
draw_run(record, "runs")
c1, c2, c3 = st.columns(3)
if record.status in ACTIVE:
    if c1.button("Stop"):
        run_store().request_stop(run_id)
        st.rerun()
elif (run_store().run_dir(run_id) / "checkpoint.safetensors").exists():
    c1.download_button("Download run (zip: checkpoint + config + metrics)", run_zip(run_id), f"{run_id}.zip",
                       "application/zip")
with c2.popover("Delete"):
    if st.button("Delete this run for good", type="primary", disabled=record.status in ACTIVE):
        run_store().delete(run_id)
        st.rerun()
with st.expander("Config and summary"):
    st.json({"config": record.config, "summary": record.summary})

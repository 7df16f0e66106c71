import streamlit as st

from ui.transfer import pick_labelled, pick_pretrained, plan_form, result_panel, start, xray_case

st.title("Transfer planner")
st.caption("Self-supervised learning pays off when unlabelled images are plentiful and labels are few: pretrain on "
           "the first, then spend the labels on a probe or a fine-tune. Work through a hospital's case, then run "
           "the same plan on your own images and see whether it beats training from scratch.")
case_tab, yours_tab = st.tabs(["The X-ray case", "Your data"])

with case_tab:
    xray_case("tr")

with yours_tab:
    st.subheader("1. Pretrain without labels")
    st.caption("Pick a run that has finished (the lab's reference runs are always there), or queue a new one on "
               "unlabelled images: a folder on the server, or an embedded dataset.")
    record = pick_pretrained("tr")

    st.subheader("2. Transfer with few labels")
    if record is None:
        st.caption("Once a run is chosen (or the one you queued has finished), pick the labelled images here.")
    else:
        st.caption("Choose a small labelled set and how much of it to use. Each label fraction is scored four ways: "
                   "a linear probe and a fine-tune of the pretrained backbone, the same network trained from "
                   "scratch on the same labels (for as many steps as the run pretrained), and a linear probe on "
                   "that network at random init.")
        data, cross = pick_labelled(record, "tr")
        if data is not None:
            plan = plan_form(record, data, cross, "tr")
            if plan is not None:
                start(plan, "tr")

    st.subheader("3. Read the result")
    result_panel("tr")

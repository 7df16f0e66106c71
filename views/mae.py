import streamlit as st

from sslcore.data import DataError
from sslcore.viz.mae import mae_reconstruct, prepare_image, tile
from sslcore.viz.mae_figures import error_figure, hidden_from_selection, patch_picker_figure
from ui.images import pick_image
from ui.models import pick_model
from ui.urlstate import data_default, fit, publish, restore

st.title("MAE reconstructions")
st.caption("What a masked autoencoder fills in (He et al. 2022, Fig. 2): the encoder sees only the visible patches, "
           "the decoder predicts every patch. Any mask ratio, three masking strategies, or hide patches by hand.")
restore("mae")
left, right = st.columns([1, 2])
with left:
    loaded = pick_model("mae_model", "mae")
    image = pick_image("mae_image")
with right:
    if loaded is not None:
        mae = loaded.model
        by_hand = st.toggle("Choose the patches to hide by hand", False, key="mae_by_hand")
        c1, c2, c3 = st.columns(3)
        ratio = c1.slider("Mask ratio", 0.05, 0.95, 0.75, 0.05, disabled=by_hand, key="mae_ratio")
        strategy = c2.radio("Masking", ["random", "block", "grid"], horizontal=True, disabled=by_hand,
                            key="mae_strategy")
        seed = int(c3.number_input("Seed", 0, 1_000_000, 0, disabled=by_hand, key="mae_seed"))
        short = None
        if getattr(mae.backbone, "dynamic_img_size", False):
            base = mae.cfg.image_size
            shorts = [base, 2 * base, 3 * base, 4 * base]
            data_default("mae_short", base)
            fit("mae_short", shorts, f"this model ({', '.join(map(str, shorts))} px)")
            short = st.select_slider("Shorter side (px): the model learned at its training size", shorts, base,
                                     key="mae_short")
        gt_stats = False
        if mae.cfg.norm_pix_loss:
            st.info("This model predicts each patch normalised by its own mean and variance (norm-pix targets): "
                    "panels are shown in that normalised space.")
            gt_stats = st.toggle("Show pixels by de-normalising each hidden patch with its true mean and variance "
                                 "(uses ground-truth statistics)", False, key="mae_gt")
publish("mae")

if loaded is not None and image is not None:
    try:
        x = prepare_image(mae, image, short)
    except DataError as e:  # an image this MAE cannot take: one sentence, not a traceback
        st.error(str(e))
        st.stop()
    grid = (x.shape[-2] // mae.patch, x.shape[-1] // mae.patch)
    hidden = None
    if by_hand:
        st.caption("Box- or lasso-select the patches to hide (shift adds to the selection; double-click clears).")
        event = st.plotly_chart(patch_picker_figure(x.permute(1, 2, 0).numpy(), mae.patch), key="mae_pick",
                                on_select="rerun", selection_mode=("points", "box", "lasso"), width="content")
        hidden = hidden_from_selection(event.selection, grid, mae.patch)
        if not hidden.any():
            st.info("No patch selected yet: the model sees the whole image.")
    p = mae_reconstruct(mae, x, ratio, strategy, seed, mask=hidden, denormalize_with_hidden_stats=gt_stats,
                        short_side=short)
    if p.uses_ground_truth_statistics:
        st.warning(p.label)
    else:
        st.caption(p.label)
    scale = max(1, 256 // max(p.original.shape[:2]))  # small images are enlarged without smoothing
    hidden_share = p.mask.mean()
    cols = st.columns(4)
    for col, (name, panel) in zip(cols, [("original", p.original),
                                         (f"masked: {hidden_share:.0%} of {p.mask.size} patches hidden", p.masked),
                                         (f"reconstruction ({p.space})", p.reconstruction),
                                         ("reconstruction + visible patches", p.pasted)]):
        col.image(tile([[panel]], scale=scale), caption=name)
    c1, c2 = st.columns([1, 2])
    c1.metric("PSNR on hidden patches", "n/a" if p.psnr is None else f"{p.psnr:.2f} dB",
              help="Pixel space, peak 1; normalised-space panels have no pixel PSNR.")
    c2.plotly_chart(error_figure(p.error, f"per-patch squared error ({p.space}), hidden patches"),
                    width="content", key="mae_error")

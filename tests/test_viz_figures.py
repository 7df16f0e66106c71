"""The live view's charts: the stage-by-stage kNN chart and what the diagnostics chart leaves out."""

import pytest

from sslcore.viz.figures import run_figures, stage_metric_names


def test_stage_chart_plots_each_stage_against_its_own_random_init():
    metrics = {"loss": ([1, 2], [2.0, 1.5]), "knn_top1": ([0, 2], [20.0, 25.0]), "task_acc": ([1, 2], [0.2, 0.4]),
               "knn_stage_10": ([0, 2], [30.0, 29.0]), "knn_stage_2": ([0, 2], [20.0, 25.0]),
               "knn_stage_1": ([0, 2], [10.0, 18.0])}
    protocols = [{"k": 20, "t": 0.1, "bank_size": 2000, "test_size": 500, "stage": i, "stages": 10, "channels": c}
                 for i, c in enumerate([32] * 10)]
    random_init = [10.0, 20.0] + [0.0] * 7 + [30.0]
    summary = {"knn_stages_random_init": random_init, "knn_stage_protocols": protocols}
    assert stage_metric_names(metrics) == ["knn_stage_1", "knn_stage_2", "knn_stage_10"]
    figs = run_figures(metrics, summary)
    traces = figs["knn_stages"].data
    assert [t.name for t in traces] == ["stage 1 (32 ch)", "stage 2 (32 ch)", "stage 10 (32 ch)"]
    # Gain over the same stage at random init: each trace starts at 0.
    assert [list(t.y) for t in traces] == [[0.0, 8.0], [0.0, 5.0], [0.0, -1.0]]
    assert "k=20, T=0.1, bank 2000, test 500" in figs["knn_stages"].layout.title.text
    assert [t.name for t in figs["method"].data] == ["task_acc"]  # stage metrics have their own chart


def test_runs_without_stage_scores_get_no_stage_chart():
    figs = run_figures({"loss": ([1], [1.0]), "knn_top1": ([0], [20.0])}, {"knn_top1_random_init": 20.0})
    assert "knn_stages" not in figs and "method" not in figs
    assert figs["knn"].data[0].y == pytest.approx((20.0,))


def test_reference_lines_are_drawn_across_the_plot_with_their_labels():
    metrics = {"loss": ([1, 2], [2.0, 1.5]), "knn_top1": ([0, 2], [20.0, 25.0]), "collapse_std": ([1, 2], [0.1, 0.09]),
               "collapse_reference": ([0], [0.125])}
    figs = run_figures(metrics, {"knn_top1_random_init": 18.5})
    knn = figs["knn"].layout
    assert [(s.y0, s.y1, s.xref, s.x0, s.x1) for s in knn.shapes] == [(18.5, 18.5, "x domain", 0, 1)]
    assert [a.text for a in knn.annotations] == ["random init 18.5%"]
    collapse = figs["collapse"].layout
    assert [(s.y0, s.line.color) for s in collapse.shapes] == [(0.125, "green"), (0, "red")]
    labels = [(a.text, a.yanchor) for a in collapse.annotations]
    assert labels == [("1/sqrt(d) = 0.125", "bottom"), ("collapsed", "top")]
    assert figs["loss"].layout.shapes == () and figs["loss"].data[0].mode == "lines"
    assert figs["knn"].data[0].mode == "lines+markers" and not figs["knn"].layout.showlegend


def test_patch_tasks_show_the_training_scale_beside_the_readout_scale():
    metrics = {"loss": ([1], [1.0]), "knn_top1": ([0, 2], [20.0, 22.0]), "knn_top1_train_scale": ([0, 2], [25.0, 30.0])}
    scale = {"protocol": {"image_size": 64, "input_size": 16}}
    knn = run_figures(metrics, {"knn_train_scale": scale})["knn"]
    assert [t.name for t in knn.data] == ["inputs 64 px", "inputs 64 -> 16 px (training scale)"]
    assert knn.layout.showlegend and knn.layout.shapes == ()

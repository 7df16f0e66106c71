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

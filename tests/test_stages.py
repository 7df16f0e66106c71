"""Stage-wise readout: timm's forward_intermediates on our convnet, kNN per stage, the CLI's --stages."""

import json
import subprocess
import sys

import pytest
import torch

from sslcore.data import make_shapes
from sslcore.eval import KNNEvaluator
from sslcore.models import create_backbone
from sslcore.eval import extract_features, knn_accuracy
from sslcore.stages import StageReadout, knn_by_stage, knn_with_stages, num_stages, stage_rows


@pytest.mark.parametrize("name,side", [("convnet", (16, 16, 8, 4)), ("convnet_fullres", (32, 16, 8, 4))])
def test_convnet_intermediates_follow_feature_info_and_end_at_forward_features(name, side):
    torch.manual_seed(0)
    net = create_backbone(name).eval()
    x = torch.randn(2, 3, 32, 32)
    final, outs = net.forward_intermediates(x)
    assert torch.equal(final, net.forward_features(x))
    assert [o.shape[1] for o in outs] == [f["num_chs"] for f in net.feature_info] == [32, 64, 128, 256]
    assert [o.shape[-1] for o in outs] == list(side) == [32 // f["reduction"] for f in net.feature_info]
    assert torch.equal(outs[-1], net.forward_features(x))
    (second,) = net.forward_intermediates(x, indices=[1], intermediates_only=True)
    assert torch.equal(second, outs[1])
    assert [o.shape[1] for o in net.forward_intermediates(x, indices=2, intermediates_only=True)] == [128, 256]  # the last two, as timm
    assert torch.equal(net.forward_intermediates(x, indices=[-1], intermediates_only=True)[0], outs[-1])


def test_last_stage_readout_is_the_pooled_output_of_a_convnet():
    torch.manual_seed(0)
    net = create_backbone("convnet").eval()
    x = torch.randn(3, 3, 32, 32)
    assert torch.allclose(StageReadout(net, -1)(x), net(x), atol=1e-6)
    assert StageReadout(net, 1)(x).shape == (3, 64)
    with pytest.raises(ValueError, match="out of range"):
        StageReadout(net, 4)


def test_vit_stages_are_its_blocks_with_patch_tokens_averaged():
    torch.manual_seed(0)
    vit = create_backbone("vit_tiny").eval()
    x = torch.randn(2, 3, 32, 32)
    assert num_stages(vit) == 6
    tokens = vit.forward_intermediates(x, indices=[2], output_fmt="NLC", intermediates_only=True)[0]  # (B, 64, 192)
    assert torch.allclose(StageReadout(vit, 2)(x), tokens.mean(1), atol=1e-5)


def test_knn_by_stage_scores_every_stage_with_its_protocol():
    data = make_shapes(120, seed=3)
    evaluator = KNNEvaluator(data.images[:80], data.labels[:80], data.images[80:], data.labels[80:], k=5, t=0.1)
    torch.manual_seed(0)
    net = create_backbone("convnet")
    scores = knn_by_stage(net, evaluator, model="random init")
    assert [s.protocol.stage for s in scores] == [0, 1, 2, 3]
    assert [s.protocol.channels for s in scores] == [32, 64, 128, 256]
    assert all(s.model == "random init" and s.metric == "knn" for s in scores)
    # The last stage averaged over space is the backbone's own pooled output: the standard protocol's number.
    assert scores[-1].top1 == pytest.approx(100 * evaluator(net))
    assert scores[0].protocol.describe() == ("weighted kNN, k=5, T=0.1, bank=80, test=40, features: stage 1 of 4 "
                                             "(32 channels, averaged over space)")
    assert scores[0].to_dict()["protocol"] == {"k": 5, "t": 0.1, "bank_size": 80, "test_size": 40, "stage": 0,
                                               "stages": 4, "channels": 32}


@pytest.mark.parametrize("name", ["convnet", "vit_tiny"])
def test_one_pass_gives_the_standard_knn_and_each_stage_readouts(name):
    data = make_shapes(120, seed=4)
    evaluator = KNNEvaluator(data.images[:80], data.labels[:80], data.images[80:], data.labels[80:], k=5, t=0.1)
    torch.manual_seed(0)
    net = create_backbone(name)
    standard, stages = knn_with_stages(net, evaluator)
    assert standard == 100 * evaluator(net)
    assert len(stages) == num_stages(net)
    for i in (0, len(stages) - 1):  # each stage as its own readout through the evaluator's features
        bank, test = (extract_features(StageReadout(net, i), x) for x in (evaluator.bank_images, evaluator.test_images))
        assert stages[i] == pytest.approx(100 * knn_accuracy(bank, evaluator.bank_labels, test, evaluator.test_labels,
                                                             5, 0.1))


def test_cli_eval_stages_reports_the_run_and_its_random_init(tmp_path):
    def cli(*args):
        out = subprocess.run([sys.executable, "-m", "sslcore", *args], capture_output=True, text=True, timeout=600)
        assert out.returncode == 0, out.stderr[-2000:]
        return json.loads(out.stdout.strip().splitlines()[-1])

    # At 32 px, not its default run's 64: relpos's patches are then magnified, so its kNN is also read at scale.
    run = cli("train", "--method", "relpos", "--image-size", "32", "--steps", "3", "--batch-size", "32",
              "--train-size", "256",
              "--knn-every", "1000", "--knn-test", "100", "--out", str(tmp_path), "--json")
    result = cli("eval", "--run", run["run_dir"], "--dataset", "shapes", "--knn-bank", "300", "--knn-test", "100",
                 "--stages", "--json")
    stages = result["stages"]
    assert [(s["model"], s["protocol"]["stage"]) for s in stages] == [("run", i) for i in range(4)] + \
        [("random init", i) for i in range(4)]
    assert all(0 <= s["top1"] <= 100 and "averaged over space" in s["describe"] for s in stages)
    # relpos trains on 16 px patches cut 7.68 px wide from 32 px images: its kNN is also read at 67 px.
    scaled = run["knn_train_scale"]
    assert scaled["protocol"]["input_size"] == 67 and scaled["describe"].endswith("inputs resized 32 -> 67 px")
    assert len(scaled["stages"]) == len(scaled["stages_random_init"]) == 4
    assert scaled["stages"][-1] == scaled["top1"]
    # Without --knn the standard kNN of the run is still reported beside the stages.
    assert result["knn_top1"] == pytest.approx(stages[3]["top1"])


def test_stage_rows_pair_the_run_with_its_random_init_per_stage():
    def score(model, stage, top1):
        return {"model": model, "top1": top1, "protocol": {"stage": stage, "stages": 2, "channels": 32 * (stage + 1)}}

    rows = stage_rows([score("run", 0, 30.04), score("run", 1, 20.0), score("random init", 0, 25.0),
                       score("random init", 1, 22.5)])
    assert rows == [{"stage": "1 of 2", "channels": 32, "run %": 30.0, "random init %": 25.0, "gain (points)": 5.0},
                    {"stage": "2 of 2", "channels": 64, "run %": 20.0, "random init %": 22.5, "gain (points)": -2.5}]

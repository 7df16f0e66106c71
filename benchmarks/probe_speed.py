"""The linear probe's solver against scikit-learn's: seconds, objective reached, test top-1.

Features: a trained run's backbone (``--run DIR``, e.g. a CIFAR-10 run of ``knn_gain.py``) or a
random-init ``convnet`` on CIFAR-10 train/test (``make testdata``). Per labelled-set size, two
rows: one fit at C=1 (scikit-learn ``LogisticRegression`` on ``StandardScaler`` features, its
defaults, against ``sslcore.logistic.fit_logistic``), and the whole probe the lab reports (C from
{0.01, 0.1, 1, 10} by stratified 3-fold CV, then the final fit): scikit-learn's pipeline with
cold starts against ``sslcore.eval.linear_probe``, which warm-starts each C from the last. The
objective column is scikit-learn's divided by N (``sslcore.logistic.objective``) at each solution.

Usage: python benchmarks/probe_speed.py [--run DIR] [--sizes 1000 5000 50000] [--test 10000]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from sslcore.eval import C_GRID, extract_features, label_subset, linear_probe
from sslcore.logistic import fit_logistic, objective

CIFAR = Path(__file__).parents[1] / ".cache" / "data" / "cifar10"


def load_features(run: Path | None, test: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    from sslcore.data import load_folder
    from sslcore.models import create_backbone
    from sslcore.runs.saved import load_run

    torch.manual_seed(0)
    backbone = load_run(run)[0].backbone if run else create_backbone("convnet")
    train, held_out = load_folder(CIFAR / "train"), load_folder(CIFAR / "test", max_images=test)
    return (extract_features(backbone, train.images), train.labels,
            extract_features(backbone, held_out.images), held_out.labels)


def sklearn_fit(x: np.ndarray, y: np.ndarray, c: float):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=1000)).fit(x, y)


def sklearn_probe(x: np.ndarray, y: np.ndarray, xt: np.ndarray, yt: np.ndarray) -> tuple[float, float]:
    """scikit-learn's CV-over-C probe with cold starts: (C, test top-1)."""
    from sklearn.model_selection import StratifiedKFold

    splits = list(StratifiedKFold(3, shuffle=True, random_state=0).split(x, y))
    mean = {c: np.mean([sklearn_fit(x[f], y[f], c).score(x[v], y[v]) for f, v in splits]) for c in C_GRID}
    best = max(C_GRID, key=lambda c: mean[c])
    return best, sklearn_fit(x, y, best).score(xt, yt)


def sklearn_objective(pipe, x: torch.Tensor, y: torch.Tensor, c: float) -> float:
    scaler, clf = pipe[0], pipe[1]
    z = torch.from_numpy(scaler.transform(x.numpy())).float()
    return objective(torch.from_numpy(clf.coef_).float(), torch.from_numpy(clf.intercept_).float(), z, y, c).item()


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", type=Path)
    p.add_argument("--sizes", nargs="+", type=int, default=[1000, 5000, 50000])
    p.add_argument("--test", type=int, default=10000)
    args = p.parse_args()
    bank, bank_labels, test, test_labels = load_features(args.run, args.test)
    print(f"features: {'run ' + args.run.name if args.run else 'random-init convnet'}, dim {bank.shape[1]}, "
          f"test {len(test)}, torch threads {torch.get_num_threads()}\n")
    print("| labelled | task | scikit-learn s | sslcore s | speed-up | objective sklearn / sslcore | top-1 sklearn / sslcore % |")
    print("|---|---|---|---|---|---|---|")
    for n in args.sizes:
        idx = label_subset(bank_labels, n / len(bank_labels), 0)
        x, y = bank[idx], bank_labels[idx]
        pipe, t_sk = timed(lambda: sklearn_fit(x.numpy(), y.numpy(), 1.0))
        model, t_ours = timed(lambda: fit_logistic(x, y, 1.0))
        z = model.standardize(x)
        print(f"| {len(idx)} | one fit, C=1 | {t_sk:.1f} | {t_ours:.1f} | {t_sk / t_ours:.1f}x | "
              f"{sklearn_objective(pipe, x, y, 1.0):.5f} / {objective(model.weight, model.bias, z, y, 1.0).item():.5f} | "
              f"{100 * pipe.score(test.numpy(), test_labels.numpy()):.2f} / {100 * model.accuracy(test, test_labels):.2f} |",
              flush=True)
        (c_sk, acc_sk), t_sk = timed(lambda: sklearn_probe(x.numpy(), y.numpy(), test.numpy(), test_labels.numpy()))
        score, t_ours = timed(lambda: linear_probe(x, y, test, test_labels))
        print(f"| {len(idx)} | probe: C by 3-fold CV + final fit | {t_sk:.1f} | {t_ours:.1f} | {t_sk / t_ours:.1f}x | "
              f"C={c_sk:g} / C={score.protocol.c:g} | {100 * acc_sk:.2f} / {score.top1:.2f} |", flush=True)


if __name__ == "__main__":
    main()

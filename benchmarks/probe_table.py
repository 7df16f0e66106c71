"""kNN and linear probes with 1%/10%/100% of CIFAR-10's labels for runs of equal CPU budget.

Evaluates the CIFAR-10 runs that ``benchmarks/knn_gain.py`` left in its store (one per method,
same data, budget and seed) through ``sslcore.runner.evaluate_run``, the CLI's ``eval``. The
random-init and supervised references are measured once per backbone (on the first run that has
it): the supervised model trains the same backbone with the same views for the run's number of
steps on the same labelled subset. Fractions are of the whole training set (bank = 50,000).

Usage: python benchmarks/probe_table.py [--store .cache/bench_runs] [--fractions 0.01 0.1 1]
       [--methods simclr moco ...] [--no-references]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from sslcore.runner import evaluate_run
from sslcore.runs import RunStore

CIFAR = Path(__file__).parents[1] / ".cache" / "data" / "cifar10"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--store", type=Path, default=Path(".cache/bench_runs"))
    p.add_argument("--fractions", nargs="+", type=float, default=[0.01, 0.1, 1.0])
    p.add_argument("--bank", type=int, default=50_000, help="labelled training images the fractions are taken from")
    p.add_argument("--test", type=int, default=10_000)
    p.add_argument("--results", type=Path, help="also write each run's scores as JSON lines here")
    p.add_argument("--methods", nargs="+", help="only these methods' runs (default: every method in the store)")
    p.add_argument("--no-references", action="store_true", help="skip random init and supervised (measured already)")
    args = p.parse_args()
    runs = [r for r in RunStore(args.store).list(status=("finished",))
            if r.dataset == "folder" and r.config.get("eval_dir") and "cifar10" in r.config["eval_dir"]]
    runs = [r for r in {r.method: r for r in reversed(runs)}.values()  # the newest run per method
            if args.methods is None or r.method in args.methods]
    names = [f"{100 * f:g}%" for f in args.fractions]  # as sslcore.eval.percent writes them
    print(f"| model | backbone | steps | kNN % | {' | '.join(f'linear {n} %' for n in names)} |")
    print("|---|---|---|---|" + "---|" * len(names))
    protocols: dict[str, str] = {}
    references_done: set[str] = set()
    for r in sorted(runs, key=lambda r: r.method):
        with_refs = not args.no_references and r.backbone not in references_done
        references_done.add(r.backbone)
        out = evaluate_run(RunStore(args.store).run_dir(r.id), "folder", data_dir=str(CIFAR / "train"),
                           eval_dir=str(CIFAR / "test"), bank=args.bank, test=args.test,
                           label_fractions=args.fractions, random_init=with_refs, supervised=with_refs)
        for model, scores in out["scores"].items():
            label = r.method if model == "run" else f"{model} ({r.backbone})"
            metric = "supervised" if model == "supervised" else "linear"
            cells = [scores.get(f"{metric} {n}", {}).get("top1") for n in names]
            knn = scores.get("knn", {}).get("top1")
            print(f"| {label} | {r.backbone} | {r.summary.get('steps')} | {'-' if knn is None else f'{knn:.1f}'} | "
                  + " | ".join("-" if v is None else f"{v:.1f}" for v in cells) + " |", flush=True)
            for score in scores.values():
                protocols.setdefault(f"{score['metric']} {score['fraction']:g} {model}", score["describe"])
        if args.results:
            with args.results.open("a") as f:
                f.write(json.dumps({"method": r.method, "run": r.id, "scores": out["scores"]}) + "\n")
    print("\nProtocols:")
    for key, describe in sorted(protocols.items()):
        print(f"- {key}: {describe}")


if __name__ == "__main__":
    main()

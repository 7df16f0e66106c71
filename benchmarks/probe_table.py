"""kNN and linear probes with 1%/10%/100% of CIFAR-10's labels for runs of equal CPU budget.

Evaluates the CIFAR-10 runs that ``benchmarks/knn_gain.py`` left in its store (one per method,
same data, budget and seed) through ``sslcore.runs.evaluate.evaluate_run``, the CLI's ``eval``. The
random-init and supervised references are measured once per backbone (on the first run that has
it): the supervised model trains the same backbone with the same views for the run's number of
steps on the same labelled subset. Fractions are of the whole training set (bank = 50,000).

Usage: python benchmarks/probe_table.py [--store .cache/bench_runs | --runs RUN_DIR ...]
       [--fractions 0.01 0.1 1] [--methods simclr moco ...] [--no-references | --no-supervised]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from sslcore.runs.evaluate import evaluate_run
from sslcore.runs import RunStore

CIFAR = Path(__file__).parents[1] / ".cache" / "data" / "cifar10"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--store", type=Path, default=Path(".cache/bench_runs"))
    p.add_argument("--runs", nargs="+", type=Path, help="these run folders instead of the store's newest per method")
    p.add_argument("--fractions", nargs="+", type=float, default=[0.01, 0.1, 1.0])
    p.add_argument("--bank", type=int, default=50_000, help="labelled training images the fractions are taken from")
    p.add_argument("--test", type=int, default=10_000)
    p.add_argument("--results", type=Path, help="also write each run's scores as JSON lines here")
    p.add_argument("--methods", nargs="+", help="only these methods' runs (default: every method in the store)")
    p.add_argument("--no-references", action="store_true", help="skip random init and supervised (measured already)")
    p.add_argument("--no-supervised", action="store_true",
                   help="random init only: the supervised reference trains for the run's steps per fraction")
    args = p.parse_args()
    runs = sorted(run_folders(args.runs) if args.runs else store_runs(args.store), key=lambda r: r["method"])
    runs = [r for r in runs if args.methods is None or r["method"] in args.methods]
    names = [f"{100 * f:g}%" for f in args.fractions]  # as sslcore.eval.percent writes them
    print(f"| model | backbone | steps | kNN % | {' | '.join(f'linear {n} %' for n in names)} |")
    print("|---|---|---|---|" + "---|" * len(names))
    protocols: dict[str, str] = {}
    references_done: set[str] = set()
    for r in runs:
        with_refs = not args.no_references and r["backbone"] not in references_done
        references_done.add(r["backbone"])
        out = evaluate_run(r["dir"], "folder", data_dir=str(CIFAR / "train"), eval_dir=str(CIFAR / "test"),
                           bank=args.bank, test=args.test, label_fractions=args.fractions, random_init=with_refs,
                           supervised=with_refs and not args.no_supervised)
        for model, scores in out["scores"].items():
            label = r["method"] if model == "run" else f"{model} ({r['backbone']})"
            metric = "supervised" if model == "supervised" else "linear"
            cells = [scores.get(f"{metric} {n}", {}).get("top1") for n in names]
            knn = scores.get("knn", {}).get("top1")
            print(f"| {label} | {r['backbone']} | {r['steps']} | {'-' if knn is None else f'{knn:.1f}'} | "
                  + " | ".join("-" if v is None else f"{v:.1f}" for v in cells) + " |", flush=True)
            for score in scores.values():
                protocols.setdefault(f"{score['metric']} {score['fraction']:g} {model}", score["describe"])
        if args.results:
            with args.results.open("a") as f:
                f.write(json.dumps({"method": r["method"], "run": r["dir"].name, "scores": out["scores"]}) + "\n")
    print("\nProtocols:")
    for key, describe in sorted(protocols.items()):
        print(f"- {key}: {describe}")


def store_runs(root: Path) -> list[dict]:
    """The newest finished CIFAR-10 run per method in the run store at ``root``."""
    store = RunStore(root)
    runs = [r for r in store.list(status=("finished",))
            if r.dataset == "folder" and r.config.get("eval_dir") and "cifar10" in r.config["eval_dir"]]
    newest = {r.method: r for r in reversed(runs)}.values()
    return [{"dir": store.run_dir(r.id), "method": r.method, "backbone": r.backbone, "steps": r.summary.get("steps")}
            for r in newest]


def run_folders(dirs: list[Path]) -> list[dict]:
    """Runs named by folder (they may sit in different stores), described by their checkpoint sidecars."""
    runs = []
    for d in dirs:
        summary = json.loads((d / "checkpoint.json").read_text())["summary"]
        runs.append({"dir": d, "method": summary["method"], "backbone": summary["backbone"], "steps": summary["steps"]})
    return runs


if __name__ == "__main__":
    main()

"""Paired differences of every arm of finished runs against one reference arm.

    python -m benchmarks.paired_against --reference gradw-shrink \\
        docs/results/default_fast/digits docs/results/default_fast/mnist ...

Reads each folder's ``rounds.csv`` (written by ``benchmarks.label_efficiency`` or a
research screen, ``benchmarks.research.ally_screen``), computes every arm's area under the
learning curve per seed, and writes ``paired_vs_<reference>.md`` next to it: per arm,
mean ± std of the AULC and of the per-seed difference to the reference (arm - reference;
for a regression task lower is better), the seeds on which the arm is better, and the
difference over its standard error. Seeds are those every arm of the folder finished.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from benchmarks.harness.paired import paired_rows, per_seed_aulc, read_rounds
from benchmarks.harness.reporting import markdown_table, write_atomic


def paired(folder: Path, reference: str, higher: bool, earlier=None) -> list[list]:
    """Table rows for one folder; with ``earlier`` (a folder holding a folder of the same
    name), its ALLY arms too, named ``<arm> (earlier)``."""
    aulc = per_seed_aulc(read_rounds(folder / "rounds.csv"))
    if earlier is not None:
        before = per_seed_aulc(read_rounds(Path(earlier) / folder.name / "rounds.csv"))
        aulc.update((f"{arm} (earlier)", values) for arm, values in before.items()
                    if arm.startswith("ALLY"))
    if reference not in aulc:
        raise ValueError(f"{folder}: no arm {reference!r} (arms: {', '.join(aulc)})")
    return paired_rows(aulc, reference, higher)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.paired_against",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+")
    parser.add_argument("--reference", required=True)
    parser.add_argument("--lower-is-better", default="parkinsons,diabetes",
                        help="folders whose name contains one of these hold a regression "
                             "task (MSE: lower is better)")
    parser.add_argument("--earlier", default=None, metavar="DIR",
                        help="also compare the ALLY arms of DIR/<folder name>/rounds.csv "
                             "(the same table before a change), named '<arm> (earlier)'")
    args = parser.parse_args(argv)
    lower = [s for s in args.lower_is_better.split(",") if s]
    for folder in map(Path, args.folders):
        higher = not any(name in folder.name for name in lower)
        table = markdown_table(
            ["arm", "seeds", "AULC", f"arm - {args.reference}", "seeds better",
             "difference / its standard error"],
            paired(folder, args.reference, higher, args.earlier))
        text = "\n".join([f"# {folder.name}: every arm against {args.reference}", "",
                          f"AULC of test {'accuracy (higher' if higher else 'MSE (lower'} "
                          "is better), mean ± std over seeds (ddof=1).", ""] + table) + "\n"
        suffix = "_with_earlier" if args.earlier else ""
        write_atomic(folder / f"paired_vs_{args.reference}{suffix}.md", text)
        print(text)


if __name__ == "__main__":
    main()

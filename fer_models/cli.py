"""`fer-studio`: the toolkit's one command line, a subcommand per job.

    fer-studio --help                                   # every subcommand, a line each
    fer-studio train --recipe resnet10_fer --data path/to/fer2013.csv.gz --out runs/resnet10_fer
    fer-studio SUBCOMMAND --help                        # its arguments
    python -m fer_models SUBCOMMAND ...                 # the same, without `pip install -e .`

Each subcommand is the `main(argv)` of the module that owns the job, imported only when it is asked for:
`fer-studio runs` reads run folders without paying for torch's import.
"""
from __future__ import annotations

import importlib
import sys

# name: (the module whose main() it runs, what it does in one line)
COMMANDS = {
    "train": ("fer_models.training.command", "train a model into a run folder, or --resume one"),
    "evaluate": ("fer_models.evaluation.evaluate", "score a run on a split of a dataset: eval/<split>/ in the run"),
    "mistakes": ("fer_models.evaluation.mistakes", "a run's mistakes beside the FER+ annotators' votes, per class"),
    "runs": ("fer_models.runs.registry", "the models table of a runs folder, or write it into a README"),
    "ship": ("fer_models.training.ship", "copy a finished run into the repository as a reference run"),
    "atlas": ("fer_models.explain.atlas", "precompute a run's filter atlas (atlas.npz) for the Filters page"),
    "report": ("fer_models.teaching.report", "one self-contained HTML report of a run"),
    "predict": ("fer_models.media.predict", "every face in photos and folders of photos, one CSV row each"),
    "video": ("fer_models.media.video", "annotate a video file: labelled MP4 and a per-frame CSV"),
    "bundle": ("fer_models.datasets.bundle", "rebuild the bundled PublicTest faces from the dataset"),
}


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = ["usage: fer-studio SUBCOMMAND [ARGUMENTS]   (fer-studio SUBCOMMAND --help for its arguments)", "",
             "subcommands:"]
    lines += [f"  {name:<{width}}  {what}" for name, (_, what) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"error: {name!r} is not a subcommand; choose one of {', '.join(COMMANDS)} (see fer-studio --help)",
              file=sys.stderr)
        return 2
    return importlib.import_module(COMMANDS[name][0]).main(rest)


if __name__ == "__main__":
    sys.exit(main())

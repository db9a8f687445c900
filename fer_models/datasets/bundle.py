"""The one dataset file the repository ships, rebuilt from the dataset: FER2013's PublicTest faces with their
labels, ids (row numbers in fer2013.csv) and the ten FER+ annotators' votes on each.

    fer-studio bundle --data path/to/fer2013.csv.gz --ferplus path/to/fer2013new.csv \
        --out artifacts/data/fer2013_publictest.npz
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from fer_models.core.arguments import OneLineParser
from fer_models.core.files import OutputError, checked_output
from fer_models.datasets.facedata import DataError
from fer_models.datasets.ferplus import FERPLUS_COLUMNS, ferplus_votes
from fer_models.datasets.loading import load_faces

SPLIT = "PublicTest"
# the one dataset file the project ships (README: FER2013 credits), so faces show with no dataset installed
BUNDLED_PUBLICTEST = Path(__file__).resolve().parents[2] / "artifacts" / "data" / "fer2013_publictest.npz"


def bundle_publictest(data_path, ferplus_path, out) -> dict:
    """Write the npz; returns what it holds (counts) for the caller to report."""
    data = load_faces(data_path, splits=[SPLIT])
    votes, named = ferplus_votes(ferplus_path, data)
    if votes.max(initial=0) > 255:
        raise DataError(f"{ferplus_path}: a vote count above 255 does not fit the bundle's uint8")
    try:
        data.save_npz(Path(out), extra={"ferplus_votes": votes.astype(np.uint8),
                                        "ferplus_columns": np.array(FERPLUS_COLUMNS), "ferplus_named": named})
    except OSError as err:  # a full disk: the temporary file is removed and what was at `out` stays as it was
        raise OutputError(f"{out}: cannot be written ({err.strerror or err}); nothing was saved") from None
    return {"faces": len(data), "with_votes": int((votes.sum(1) > 0).sum()), "not_named": int((~named).sum())}


def parser() -> OneLineParser:
    p = OneLineParser(prog="fer-studio bundle", description=__doc__.split("\n")[0])
    p.add_argument("--data", required=True, help="fer2013.csv(.gz)")
    p.add_argument("--ferplus", help="fer2013new.csv (default: beside --data)")
    p.add_argument("--out", default=str(BUNDLED_PUBLICTEST))
    return p


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    ferplus = args.ferplus or Path(args.data).with_name("fer2013new.csv")
    try:  # before reading the dataset: the inputs may not be overwritten, nor a device or a folder replaced
        checked_output(args.out, "--out", keep=[(args.data, "the --data dataset"), (ferplus, "the FER+ votes file")])
        held = bundle_publictest(args.data, ferplus, args.out)
    except (DataError, OutputError) as err:
        print(f"error: {' '.join(str(err).split())}", file=sys.stderr)  # a parser's message may span lines
        return 2
    print(f"wrote {args.out}: {held['faces']} faces, {held['with_votes']} with FER+ votes, "
          f"{held['not_named']} that FER+ marks as no face")
    return 0


if __name__ == "__main__":
    sys.exit(main())

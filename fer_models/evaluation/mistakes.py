"""The faces a run gets wrong, beside what the ten FER+ annotators said about each.

FER2013's labels come from one annotator per face; FER+ (Barsoum et al. 2016) had ten people relabel every
face. Where most of them side with the model rather than with the label, the "mistake" is more likely the
dataset's. This module is torch-free: the page, the report and the CLI share it.

    fer-studio mistakes --run artifacts/runs/resnet10_fer [--split PublicTest]
"""
from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from fer_models.core.arguments import OneLineParser
from fer_models.core.constants import EMOTIONS
from fer_models.datasets.facedata import DataError
from fer_models.datasets.ferplus import FERPLUS_COLUMNS, ferplus_votes, seven_class_votes
from fer_models.datasets.loading import load_faces
from fer_models.runs.folder import split_argument

# what the ten annotators' most common answer (the class with the most votes, a plurality: it may be 4 of 10)
# says about one mistake; a strict majority, at least 6 of the 10, is counted beside it (MAJORITY)
MODEL, LABEL, OTHER, SPLIT, NONE = "model", "label", "other", "split", "no votes"
VERDICTS = {MODEL: "is the model's class", LABEL: "is the label", OTHER: "is a third class",
            SPLIT: "is no single class (a tie, or 'not a face')", NONE: "no FER+ votes"}
MAJORITY = "at least 6 of the 10"
ORDERS = ("most confident first", "least confident first")


PUBLICTEST_FACES = 3589  # FER2013's PublicTest: a split of this size is taken to be it, and checked against it


def face_keys(images: np.ndarray) -> np.ndarray:
    """A key per face from its pixels: the same face has the same key in any file and in any row order."""
    flat = np.ascontiguousarray(np.asarray(images, np.uint8).reshape(len(images), -1))
    return np.array([hashlib.sha1(row.tobytes()).hexdigest()[:24] for row in flat])


def votes_from_bundle(path, faces=None) -> tuple[pd.DataFrame | None, int]:
    """The bundled faces' FER+ votes (7 columns in FER2013 class order plus `NF`, `named`) and how many of
    `faces` they do not cover. Without `faces` they are by the bundle's ids; with `faces` (ids, images: the
    evaluated faces) they are matched to each face by its pixels, so that a copy of FER2013 in another row
    order (where row numbers name other faces) still gets each face's own votes. None when it carries none."""
    with np.load(path, allow_pickle=False) as z:
        if "ferplus_votes" not in z.files:
            return None, 0
        votes10, ids = z["ferplus_votes"].astype(np.int64), z["ids"].astype(str)
        named = z["ferplus_named"] if "ferplus_named" in z.files else np.ones(len(ids), bool)
        columns = tuple(z["ferplus_columns"].astype(str)) if "ferplus_columns" in z.files else FERPLUS_COLUMNS
        images = z["images"] if faces is not None else None
    if columns != FERPLUS_COLUMNS or votes10.shape != (len(ids), len(FERPLUS_COLUMNS)):
        raise DataError(f"{path}: FER+ votes of an unexpected shape or column order")
    if faces is None:
        return _table(votes10, named, ids), 0
    by_pixels = _table(votes10, named, face_keys(images))
    by_pixels = by_pixels[~by_pixels.index.duplicated()]  # FER2013 holds a few identical pictures twice
    face_ids, face_images = faces
    matched = by_pixels.reindex(face_keys(face_images))
    matched.index = pd.Index(np.asarray(face_ids).astype(str), name="id")
    found = matched["NF"].notna().to_numpy()
    return matched[found].astype({c: np.int64 for c in (*EMOTIONS, "NF")}), int((~found).sum())


def row_order_problem(data, bundled) -> str | None:
    """Why FER+ votes cannot align row by row with `data` (a FaceData of a FER2013 CSV): its PublicTest split is
    FER2013's in size but not the same faces in the same order (a shuffled or edited copy), which would give
    faces other faces' votes. None when it lines up, or when it cannot be told."""
    rows = data.splits == "PublicTest"
    if int(rows.sum()) != PUBLICTEST_FACES or not Path(bundled).is_file():
        return None
    with np.load(bundled, allow_pickle=False) as z:
        reference = z["images"]
    if reference.shape != data.images[rows].shape:
        return None
    moved = int((data.images[rows] != reference).reshape(len(reference), -1).any(1).sum())
    return (f"{moved:,} of its PublicTest faces are not FER2013's in the original row order, and FER+ votes "
            "align row by row" if moved else None)


def votes_beside(data_path, split: str, bundled=None) -> pd.DataFrame | None:
    """FER+ votes for a split of a FER2013 file, from fer2013new.csv in the same folder; None if there is none.
    DataError if the file's rows are not in FER2013's order (checked against the bundled faces)."""
    data_path = Path(data_path)
    if not data_path.name or not data_path.is_file():  # FER+ relabels the Kaggle CSV: a folder has no votes beside
        return None
    ferplus = data_path.with_name("fer2013new.csv")
    if not ferplus.is_file():
        return None
    data = load_faces(data_path)
    problem = row_order_problem(data, bundled) if bundled is not None else None
    if problem:
        raise DataError(f"{data_path}: {problem}")
    data = data.split(split)
    votes10, named = ferplus_votes(ferplus, data)
    return _table(votes10, named, data.ids.astype(str))


def _table(votes10: np.ndarray, named: np.ndarray, ids: np.ndarray) -> pd.DataFrame:
    table = pd.DataFrame(seven_class_votes(votes10).astype(np.int64), columns=list(EMOTIONS), index=ids)
    table["NF"] = votes10[:, FERPLUS_COLUMNS.index("NF")]
    table["annotators"] = votes10.sum(axis=1)  # all ten columns: contempt, unknown and NF votes count as voters
    table["named"] = named
    table.index.name = "id"
    return table


def verdicts(true: np.ndarray, pred: np.ndarray, votes7: np.ndarray, nf: np.ndarray, named: np.ndarray
             ) -> np.ndarray:
    """Per face: whether the annotators' most common answer among the seven classes (a plurality) is the model's
    class, the label's, a third class, or no single class (a tie, more 'not a face' votes than the top class,
    or none)."""
    top = votes7.max(axis=1)
    unique = (votes7 == top[:, None]).sum(axis=1) == 1
    winner = votes7.argmax(axis=1)
    decided = unique & named & (top > 0) & (nf <= top)
    out = np.full(len(true), SPLIT, dtype=object)
    out[decided] = OTHER
    out[decided & (winner == pred)] = MODEL
    out[decided & (winner == true)] = LABEL
    return out


def mistake_table(predictions: pd.DataFrame, votes: pd.DataFrame | None) -> pd.DataFrame:
    """One row per misclassified face: id, true, pred, confidence (the model's probability of its class),
    second (its runner-up class) and second_p, the seven vote counts (NaN without votes), the verdict of the
    annotators' most common answer, `top_votes` of `annotators` for it, and `majority`: whether those are more
    than half (at least 6 of 10)."""
    wrong = predictions[predictions["true"] != predictions["pred"]].copy()
    wrong = wrong[(wrong["true"] >= 0)]
    probs = wrong[[f"p_{e}" for e in EMOTIONS]].to_numpy(np.float64)
    order = np.argsort(-probs, axis=1)
    wrong["confidence"] = probs[np.arange(len(wrong)), wrong["pred"].to_numpy(int)]
    wrong["second"] = order[:, 1] if len(wrong) else []
    wrong["second_p"] = probs[np.arange(len(wrong)), wrong["second"].to_numpy(int)]
    wrong["id"] = wrong["id"].astype(str)
    found = votes.reindex(wrong["id"]) if votes is not None else None
    if found is None:
        for e in EMOTIONS:
            wrong[f"votes_{e}"] = np.nan
        wrong["verdict"] = NONE
        wrong["top_votes"] = wrong["annotators"] = np.nan
        wrong["majority"] = False
    else:
        for e in EMOTIONS:
            wrong[f"votes_{e}"] = found[e].to_numpy()
        has = found["named"].notna().to_numpy()
        v = verdicts(wrong["true"].to_numpy(int), wrong["pred"].to_numpy(int),
                     np.nan_to_num(found[list(EMOTIONS)].to_numpy(np.float64)),
                     np.nan_to_num(found["NF"].to_numpy(np.float64)),
                     found["named"].fillna(False).to_numpy(bool))
        wrong["verdict"] = np.where(has, v, NONE)
        wrong["top_votes"] = found[list(EMOTIONS)].max(axis=1).to_numpy()
        wrong["annotators"] = (found["annotators"] if "annotators" in found else pd.Series(np.nan, found.index)
                               ).to_numpy()
        wrong["majority"] = has & np.isin(wrong["verdict"], [MODEL, LABEL, OTHER]) & \
            (wrong["top_votes"] * 2 > wrong["annotators"]).to_numpy()
    keep = ["id", "true", "pred", "confidence", "second", "second_p", *[f"votes_{e}" for e in EMOTIONS], "verdict",
            "top_votes", "annotators", "majority"]
    return wrong[keep].reset_index(drop=True)


def select(mistakes: pd.DataFrame, true: int | None = None, pred: int | None = None, verdict: str | None = None,
           order: str = ORDERS[0], majority: bool = False) -> pd.DataFrame:
    """Filter by true class, predicted class and verdict (None: all), and with `majority` to the faces where at
    least 6 of the 10 annotators agree; sorted by the model's confidence."""
    keep = np.ones(len(mistakes), bool)
    if majority:
        keep &= mistakes["majority"].to_numpy(bool)
    if true is not None:
        keep &= mistakes["true"].to_numpy() == true
    if pred is not None:
        keep &= mistakes["pred"].to_numpy() == pred
    if verdict is not None:
        keep &= mistakes["verdict"].to_numpy() == verdict
    return mistakes[keep].sort_values("confidence", ascending=order != ORDERS[0], kind="stable")


MOST_COMMON_MODEL = "most common answer: the model's class"
MAJORITY_MODEL = f"{MAJORITY}: the model's class"


def summary(mistakes: pd.DataFrame, predictions: pd.DataFrame) -> pd.DataFrame:
    """Per true class (and all): faces, mistakes, and what the annotators' most common answer is on them; beside
    it, how many of those where it is the model's class have a majority (at least 6 of 10) behind it."""
    rows = []
    labelled = predictions[predictions["true"] >= 0]
    for c, name in [*enumerate(EMOTIONS), (None, "all")]:
        m = mistakes if c is None else mistakes[mistakes["true"] == c]
        faces = len(labelled) if c is None else int((labelled["true"] == c).sum())
        voted = m[m["verdict"] != NONE]
        counts = voted["verdict"].value_counts()
        strict = int(((voted["verdict"] == MODEL) & voted["majority"].astype(bool)).sum())
        rows.append({"class": name, "faces": faces, "mistakes": len(m), "with votes": len(voted),
                     MOST_COMMON_MODEL: int(counts.get(MODEL, 0)), "the label": int(counts.get(LABEL, 0)),
                     "a third class": int(counts.get(OTHER, 0)), "no single class": int(counts.get(SPLIT, 0)),
                     MAJORITY_MODEL: strict,
                     "share with the model": counts.get(MODEL, 0) / len(voted) if len(voted) else np.nan,
                     "share with a majority": strict / len(voted) if len(voted) else np.nan})
    return pd.DataFrame(rows)


def in_words(run: str, split: str, table: pd.DataFrame) -> str:
    total = table.iloc[-1]
    said = (f"**{run}** gets **{total['mistakes']:,} of {total['faces']:,}** {split} faces wrong "
            f"({total['mistakes'] / max(total['faces'], 1):.1%}).")
    if total["with votes"]:
        said += (f" On **{total[MOST_COMMON_MODEL]:,}** of them (**{total['share with the model']:.0%}** of those "
                 "with FER+ votes) the ten annotators' most common answer is the model's class, not the dataset's "
                 f"label; on **{total[MAJORITY_MODEL]:,}** (**{total['share with a majority']:.0%}**) a majority, "
                 f"{MAJORITY}, chose it. There the label is the likely error.")
        by_class = table.iloc[:-1].dropna(subset=["share with the model"])
        if len(by_class):
            best = by_class.loc[by_class["share with the model"].idxmax()]
            said += (f" Most of all for **{best['class']}** faces (the model's class is the most common answer on "
                     f"{best['share with the model']:.0%} of its {best['with votes']} mistakes with votes).")
    else:
        said += " No FER+ votes are available for these faces, so nothing can be said about their labels."
    return said


def compare(first: pd.DataFrame, second: pd.DataFrame) -> dict[str, set[str]]:
    """Face ids two runs' predictions get wrong: by both, only the first, only the second (over the ids both
    scored)."""
    common = set(first["id"].astype(str)) & set(second["id"].astype(str))
    wrong_a = set(first.loc[first["true"] != first["pred"], "id"].astype(str)) & common
    wrong_b = set(second.loc[second["true"] != second["pred"], "id"].astype(str)) & common
    return {"both": wrong_a & wrong_b, "only first": wrong_a - wrong_b, "only second": wrong_b - wrong_a}


def votes_for(metrics: dict, split: str, bundled: Path, faces=None) -> tuple[pd.DataFrame | None, str]:
    """The votes for an evaluation's faces and where they came from (or why there are none): fer2013new.csv
    beside the data the evaluation scored, else the bundle's, for FER2013's PublicTest. `faces` (ids, images)
    are the evaluated faces when they are on this machine: the bundle's votes are then matched by pixels."""
    data = metrics.get("data")
    problem = None
    if isinstance(data, str) and data:
        try:
            votes = votes_beside(data, split.removesuffix("-tta"), bundled)
        except (DataError, OSError, ValueError) as err:
            votes, problem = None, f"the FER+ votes beside {data} cannot be used: {err}"
        if votes is not None:
            return votes, f"FER+ votes from fer2013new.csv beside {data}"
    if split.removesuffix("-tta") == "PublicTest" and bundled.is_file():
        votes, unmatched = votes_from_bundle(bundled, faces)
        if votes is not None:
            said = f"FER+ votes bundled with FER2013's PublicTest faces ({bundled.name})"
            if faces is not None:
                said += ", matched to each face by its pixels"
            if unmatched:
                said += f"; {unmatched:,} of the evaluated faces are not among them and have no votes"
            return votes, said + (f" ({problem})" if problem else "")
    return None, problem or ("no FER+ votes for these faces: put fer2013new.csv beside the evaluated data "
                             f"({data or 'unknown'}) to see what ten annotators said")


def votes_of_evaluation(metrics: dict, split: str, bundled: Path) -> tuple[pd.DataFrame | None, str]:
    """votes_for, with the evaluated faces read from the data the evaluation scored when it is on this machine
    (and is not the bundle itself), so that the bundle's votes reach them by pixels, not by row number."""
    from fer_models.runs.registry import faces_source

    source, faces = faces_source(metrics, split), None
    if source is not None and Path(source).resolve() != Path(bundled).resolve():
        try:
            data = load_faces(source, splits=[split.removesuffix("-tta")])
            faces = (data.ids, data.images)
        except DataError:
            pass  # the votes stay keyed by row number; the page says what cannot be read
    return votes_for(metrics, split, bundled, faces)


def covering(votes: pd.DataFrame | None, source: str, ids) -> tuple[pd.DataFrame | None, str]:
    """The votes only if they are about these faces: the bundle's are FER2013's PublicTest by row number, and an
    evaluation of other faces (another dataset, a class-folder tree) shares no id with them."""
    if votes is None or not set(votes.index).isdisjoint(map(str, ids)):  # Index.isin on text: 8 times slower
        return votes, source
    return None, (f"no FER+ votes for these faces ({source} are for other face ids): put fer2013new.csv beside "
                  "the evaluated data to see what ten annotators said")


def parser() -> OneLineParser:
    p = OneLineParser(prog="fer-studio mistakes",
                      description="A run's mistakes beside the FER+ annotators' most common answer (and a majority of "
                                  "at least 6 of 10), per class.")
    p.add_argument("--run", required=True)
    p.add_argument("--split", default="PublicTest", type=split_argument)
    return p


def main(argv=None) -> int:
    from fer_models.datasets.bundle import BUNDLED_PUBLICTEST
    from fer_models.runs.folder import RunProblem
    from fer_models.runs.registry import read_evaluation

    args = parser().parse_args(argv)
    try:
        metrics, predictions, _ = read_evaluation(args.run, args.split)
    except (FileNotFoundError, RunProblem) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    votes, source = covering(*votes_of_evaluation(metrics, args.split, BUNDLED_PUBLICTEST), predictions["id"])
    table = summary(mistake_table(predictions, votes), predictions)
    print(in_words(Path(args.run).name, args.split, table).replace("**", ""))
    print(f"({source})")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.1%}"))
    return 0


if __name__ == "__main__":
    sys.exit(main())

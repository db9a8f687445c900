"""Mistakes beside the FER+ votes: the bundled votes, the verdicts, the summary, filters, sorting, two runs."""

import numpy as np
import pandas as pd
import pytest
from warm_cli import run as warm

from fer_models.core.constants import EMOTIONS
from fer_models.datasets.bundle import bundle_publictest
from fer_models.datasets.facedata import DataError
from fer_models.datasets.ferplus import FERPLUS_COLUMNS
from fer_models.evaluation.mistakes import (
    LABEL,
    MAJORITY_MODEL,
    MODEL,
    MOST_COMMON_MODEL,
    NONE,
    OTHER,
    SPLIT,
    compare,
    in_words,
    main,
    mistake_table,
    select,
    summary,
    votes_from_bundle,
)
from helpers import ROOT, write_fer_csv

BUNDLED = ROOT / "artifacts" / "data" / "fer2013_publictest.npz"


def write_ferplus(path, sizes, seed=0):
    """fer2013new.csv for a write_fer_csv file: the same rows in the same order, random votes."""
    rng = np.random.default_rng(seed)
    rows = []
    for usage, n in sizes.items():
        for _ in range(n):
            votes = rng.multinomial(10, np.full(10, 0.1))
            rows.append([usage, f"fer{len(rows):07d}.png", *votes])
    pd.DataFrame(rows, columns=["Usage", "Image name", *FERPLUS_COLUMNS]).to_csv(path, index=False)
    return pd.read_csv(path, keep_default_na=False)


def test_the_bundle_carries_each_rows_votes_in_file_order(tmp_path):
    sizes = {"Training": 30, "PublicTest": 12}
    data = write_fer_csv(tmp_path / "fer2013.csv", sizes)
    table = write_ferplus(tmp_path / "fer2013new.csv", sizes)
    held = bundle_publictest(data, tmp_path / "fer2013new.csv", tmp_path / "bundle.npz")
    assert held == {"faces": 12, "with_votes": 12, "not_named": 0}
    with np.load(tmp_path / "bundle.npz") as z:
        assert z["ids"].tolist() == [str(i) for i in range(30, 42)]  # row numbers in the CSV
        expected = table[table["Usage"] == "PublicTest"][list(FERPLUS_COLUMNS)].to_numpy()
        assert np.array_equal(z["ferplus_votes"], expected) and z["ferplus_votes"].dtype == np.uint8
        assert tuple(z["ferplus_columns"]) == FERPLUS_COLUMNS
    votes, _ = votes_from_bundle(tmp_path / "bundle.npz")
    first = table[table["Usage"] == "PublicTest"].iloc[0]
    assert votes.loc["30", "happy"] == first["happiness"] and votes.loc["30", "angry"] == first["anger"]


def test_the_shipped_bundle_has_ten_votes_per_face():
    with np.load(BUNDLED) as z:
        votes, ids = z["ferplus_votes"], z["ids"]
        assert votes.shape == (3589, 10) and votes.dtype == np.uint8 and len(ids) == 3589
        assert (votes.astype(int).sum(1) == 10).all() and tuple(z["ferplus_columns"]) == FERPLUS_COLUMNS
    assert BUNDLED.stat().st_size < 8 * 2**20


def evaluation(rows):
    """predictions.csv rows from (id, true, pred, confidence of pred, second class, its probability)."""
    out = []
    for face, true, pred, p, second, p2 in rows:
        probs = np.full(7, (1 - p - p2) / 5)
        probs[pred], probs[second] = p, p2
        out.append({"id": face, "true": true, "pred": pred, **{f"p_{e}": probs[i] for i, e in enumerate(EMOTIONS)}})
    return pd.DataFrame(out)


def votes_table(rows):
    """id -> (seven votes, NF, named); the ten annotators' votes are those and NF."""
    table = pd.DataFrame([[*v, nf, sum(v) + nf, named] for v, nf, named in rows.values()],
                         columns=[*EMOTIONS, "NF", "annotators", "named"], index=list(rows))
    table.index.name = "id"
    return table


ANGRY, DISGUST, FEAR, HAPPY, SAD, SURPRISE, NEUTRAL = range(7)
PREDICTIONS = evaluation([
    ("1", SAD, ANGRY, 0.9, SAD, 0.05),        # annotators: angry -> with the model
    ("2", SAD, ANGRY, 0.6, FEAR, 0.3),        # annotators: sad -> with the label
    ("3", SAD, FEAR, 0.7, SAD, 0.2),          # annotators: neutral -> a third class
    ("4", HAPPY, SURPRISE, 0.5, HAPPY, 0.4),  # a tie -> split
    ("5", HAPPY, NEUTRAL, 0.8, HAPPY, 0.1),   # not a face (NF wins) -> split
    ("6", ANGRY, ANGRY, 0.9, SAD, 0.05),      # right: not a mistake
    ("7", FEAR, SAD, 0.55, FEAR, 0.4),        # no votes for this face
    ("8", SAD, ANGRY, 0.65, SAD, 0.3),        # annotators' most common answer angry, but only 4 of 10
])
VOTES = votes_table({
    "1": ([6, 0, 1, 0, 3, 0, 0], 0, True), "2": ([2, 0, 1, 0, 7, 0, 0], 0, True),
    "3": ([0, 0, 2, 0, 2, 0, 6], 0, True), "4": ([0, 0, 0, 4, 0, 4, 2], 0, True),
    "5": ([0, 0, 0, 2, 0, 0, 1], 7, True), "6": ([9, 0, 0, 0, 1, 0, 0], 0, True),
    "8": ([4, 0, 0, 0, 3, 0, 3], 0, True),
})


def test_each_mistake_gets_the_annotators_verdict():
    m = mistake_table(PREDICTIONS, VOTES).set_index("id")
    assert list(m.index) == ["1", "2", "3", "4", "5", "7", "8"]
    assert m["verdict"].to_dict() == {"1": MODEL, "2": LABEL, "3": OTHER, "4": SPLIT, "5": SPLIT, "7": NONE,
                                      "8": MODEL}
    # the most common answer is not always a majority: 6 of 10 is, 4 of 10 is not
    assert m["majority"].to_dict() == {"1": True, "2": True, "3": True, "4": False, "5": False, "7": False,
                                       "8": False}
    assert (m.loc["8", "top_votes"], m.loc["8", "annotators"]) == (4, 10)
    assert (m.loc["2", "confidence"], m.loc["2", "second"], m.loc["2", "second_p"]) == \
        (pytest.approx(0.6), FEAR, pytest.approx(0.3))
    assert m.loc["1", "votes_angry"] == 6 and np.isnan(m.loc["7", "votes_angry"])
    assert (mistake_table(PREDICTIONS, None)["verdict"] == NONE).all()


def test_the_summary_counts_per_class_and_says_it_in_words():
    m = mistake_table(PREDICTIONS, VOTES)
    table = summary(m, PREDICTIONS).set_index("class")
    assert table.loc["sad"].to_dict() == {
        "faces": 4, "mistakes": 4, "with votes": 4, MOST_COMMON_MODEL: 2, "the label": 1, "a third class": 1,
        "no single class": 0, MAJORITY_MODEL: 1, "share with the model": pytest.approx(2 / 4),
        "share with a majority": pytest.approx(1 / 4)}
    assert table.loc["all", "mistakes"] == 7 and table.loc["all", "with votes"] == 6
    assert table.loc["all", "share with the model"] == pytest.approx(2 / 6)
    assert np.isnan(table.loc["disgust", "share with the model"])  # no mistakes: undefined, not 0
    words = in_words("r", "PublicTest", summary(m, PREDICTIONS))
    assert "**7 of 8** PublicTest faces wrong" in words and "**2** of them (**33%**" in words
    assert "most common answer is the model's class" in words and "on **1** (**17%**) a majority" in words
    assert "No FER+ votes" in in_words("r", "PrivateTest", summary(mistake_table(PREDICTIONS, None), PREDICTIONS))


def test_filters_and_both_orders():
    m = mistake_table(PREDICTIONS, VOTES)
    assert select(m)["id"].tolist() == ["1", "5", "3", "8", "2", "7", "4"]  # most confident first
    assert select(m, order="least confident first")["id"].tolist() == ["4", "7", "2", "8", "3", "5", "1"]
    assert select(m, true=SAD)["id"].tolist() == ["1", "3", "8", "2"]
    assert select(m, true=SAD, pred=ANGRY)["id"].tolist() == ["1", "8", "2"]
    assert select(m, verdict=MODEL)["id"].tolist() == ["1", "8"]
    assert select(m, verdict=MODEL, majority=True)["id"].tolist() == ["1"]
    assert select(m, verdict=SPLIT)["id"].tolist() == ["5", "4"]
    assert select(m, true=HAPPY, verdict=MODEL).empty


def test_two_runs_split_their_mistakes():
    other = PREDICTIONS.copy()
    other.loc[other["id"] == "1", "pred"] = SAD      # the second run gets face 1 right
    other.loc[other["id"] == "6", "pred"] = NEUTRAL  # and face 6 wrong
    other = pd.concat([other, evaluation([("99", SAD, HAPPY, 0.9, SAD, 0.05)])])  # a face the first never scored
    groups = compare(PREDICTIONS, other)
    assert groups == {"both": {"2", "3", "4", "5", "7", "8"}, "only first": {"1"}, "only second": {"6"}}


def test_the_command_line_summary(tmp_path, capsys):
    from helpers import make_evaluated_run

    run = make_evaluated_run(tmp_path / "runs")
    assert main(["--run", str(run)]) == 0
    out = capsys.readouterr().out
    assert "PublicTest faces wrong" in out and "No FER+ votes" in out
    assert "are for other face ids): put fer2013new.csv beside" in out  # the bundle is about other faces
    assert main(["--run", str(run), "--split", "PrivateTest"]) == 2


def test_a_shuffled_copy_of_fer2013_gets_each_faces_own_votes(tmp_path):
    """Row numbers name other faces in a shuffled copy: the bundle's votes are matched by pixels, and votes
    beside the file, which align row by row, are refused rather than given to the wrong faces."""
    from fer_models.evaluation.mistakes import row_order_problem, votes_beside, votes_of_evaluation

    with np.load(BUNDLED) as z:
        images, labels, votes10 = z["images"], z["labels"], z["ferplus_votes"]
    order = np.random.default_rng(0).permutation(len(images))
    lines = ["emotion,pixels,Usage"] + [f"{labels[i]},{' '.join(map(str, images[i].ravel()))},PublicTest"
                                        for i in order]
    shuffled = tmp_path / "fer2013.csv"
    shuffled.write_text("\n".join(lines) + "\n")
    votes, source = votes_of_evaluation({"data": str(shuffled)}, "PublicTest", BUNDLED)
    assert "matched to each face by its pixels" in source
    # row r of the shuffled file is the bundle's face order[r]: its votes must be that face's
    seven = {e: i for i, e in enumerate(("neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear"))}
    for r in (0, 1, 1000):
        original = votes10[order[r]]
        assert votes.loc[str(r), "happy"] == original[seven["happiness"]]
        assert votes.loc[str(r), "angry"] == original[seven["anger"]]
    assert len(votes) >= len(images) - 30  # identical pictures (FER2013 has a few) keep the first's votes
    from fer_models.datasets.loading import load_faces
    assert "not FER2013's in the original row order" in row_order_problem(load_faces(shuffled), BUNDLED)
    write_ferplus(tmp_path / "fer2013new.csv", {"PublicTest": len(images)})
    with pytest.raises(DataError, match="original row order"):
        votes_beside(shuffled, "PublicTest", BUNDLED)


def test_every_face_card_says_how_many_of_the_ten_chose_the_leading_class():
    from app_pages._face_card import votes_bar

    bar = votes_bar(np.array([4, 0, 0, 0, 3, 0, 2]), annotators=10)  # one vote went to contempt or NF
    assert "FER+: 4 of 10\u00a0angry · 3\u00a0sad · 2\u00a0neutral" in bar and "angry: 4 of 10" in bar
    assert ">1\u00a0other</span>" in bar  # said where the tenth vote went
    # every class the bar draws is named, a fourth too; with all ten among the seven, no "other"
    bar = votes_bar(np.array([4, 0, 0, 1, 3, 0, 2]), annotators=10)
    assert "4 of 10\u00a0angry · 3\u00a0sad · 2\u00a0neutral · 1\u00a0happy</div>" in bar and "other" not in bar


def test_the_command_line_gives_both_counts_on_a_shipped_run():
    from helpers import ROOT
    done = warm(["mistakes", "--run",
                 str(ROOT / "artifacts" / "runs" / "resnet10_fer")],
                cwd=ROOT, timeout=120)
    assert done.returncode == 0 and "most common answer is the model's class" in done.stdout
    assert "a majority, at least 6 of the 10, chose it" in done.stdout


def test_a_cards_votes_sit_right_under_its_face_whatever_its_caption(monkeypatch):
    from types import SimpleNamespace

    from app_pages import _face_card

    drawn = []
    monkeypatch.setattr(_face_card, "st", SimpleNamespace(**{name: lambda *a, name=name, **k: drawn.append(name)
                                                             for name in ("image", "html", "caption", "page_link")}))
    _face_card.face_card(np.zeros((48, 48), np.uint8), ["a caption", "long enough to wrap on a narrow card"], None,
                         votes=np.array([4, 0, 0, 0, 3, 0, 2]))
    assert drawn == ["image", "html", "caption"]  # a row's bars line up only if no caption is above them


def test_a_vote_bar_is_out_of_every_annotator_with_the_other_votes_in_grey():
    import re

    from app_pages._face_card import OTHER_VOTES, votes_bar, votes_legend

    bar = votes_bar(np.array([6, 0, 0, 0, 0, 1, 0]), annotators=10)
    widths = [float(w) for w in re.findall(r"10px;width:([0-9.]+)%", bar)]
    assert widths == [60.0, 10.0, 30.0] and f"background:{OTHER_VOTES}" in bar  # "6 of 10" fills 60%, not 86%
    assert "6 of 10\u00a0angry" in bar and "3\u00a0other" in bar
    unanimous = votes_bar(np.array([0, 0, 0, 10, 0, 0, 0]), 10)
    assert [float(w) for w in re.findall(r"10px;width:([0-9.]+)%", unanimous)] == [100.0]
    assert OTHER_VOTES in votes_legend() and "other" in votes_legend()

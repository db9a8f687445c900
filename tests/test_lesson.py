"""The lesson and the quiz: sentences written from a run's numbers (change the numbers, the sentence changes), the
steps drawn headless with their navigation, and a whole quiz played through in AppTest."""
import numpy as np
import pandas as pd
import pytest

from fer_models.core.constants import EMOTIONS
from fer_models.teaching import lesson
from fer_models.teaching.quiz import QuizFace, model_beat_label, quiz_faces, score
from helpers import make_evaluated_run, open_app


@pytest.fixture
def runs(tmp_path, monkeypatch):
    run = make_evaluated_run(tmp_path / "runs", "small")
    rows = ["epoch,train_loss,train_acc,val_loss,val_acc,lr,seconds"]
    rows += [f"{e},{2 - e / 5},{0.3 + e / 20},{1.9 - e / 10},{0.25 + e / 25},0.01,30" for e in range(1, 7)]
    (run / "history.csv").write_text("\n".join(rows) + "\n")
    monkeypatch.setenv("FER_STUDIO_RUNS", str(tmp_path / "runs"))
    return run


def said(at) -> str:
    return " ".join(m.value for m in at.markdown)


def test_a_step_is_named_by_slug_or_number_and_anything_else_is_the_first():
    assert lesson.step_index("confusion") == 2 and lesson.step_index("6") == 5
    for asked in (None, "", "0", "7", "²", "../layers", "Layers"):
        assert lesson.step_index(asked) == 0


def test_confusion_sentences_follow_the_counts():
    counts = np.diag([50, 10, 40, 90, 60, 40, 60])
    counts[2, 4] = 21  # fear read as sad
    first = " ".join(lesson.confusion_story(counts))
    assert "fear is read as sad on 34% of fear faces** (21 of 61)" in first
    assert "Best read: **angry** (100%" in first and "worst: **fear** (66%)" in first
    counts[2, 4], counts[6, 0] = 0, 30
    second = " ".join(lesson.confusion_story(counts))
    assert "neutral is read as angry on 33%" in second and "fear is read as sad" not in second


def test_training_sentences_say_memorising_and_a_rising_loss_only_when_the_history_shows_them():
    h = pd.DataFrame({"epoch": [1, 2, 3], "train_acc": [0.4, 0.7, 0.9], "val_acc": [0.35, 0.5, 0.52],
                      "val_loss": [1.5, 1.2, 1.4], "seconds": [60.0] * 3})
    text = " ".join(lesson.training_story(h, planned=10))
    assert "52.0% in epoch 3** of 3 (of 10 planned)" in text and "38-point gap" in text
    assert "lowest in epoch 2 (1.200) and rose to 1.400" in text
    h["train_acc"], h["val_loss"] = [0.36, 0.5, 0.55], [1.5, 1.3, 1.1]
    text = " ".join(lesson.training_story(h, hours=0.05))  # meta.json's time, not history's 3 minutes
    assert "gap" not in text and "rose" not in text and "0.1 h of compute" in text
    assert "of compute" not in " ".join(lesson.training_story(h))


def test_saliency_sentence_places_the_evidence():
    a = np.zeros((48, 48), np.float32)
    a[30:40] = 1.0
    a[5:10] = 0.5
    a[10:12] = -5  # against the class: not evidence for it
    probs = np.array([0.05, 0, 0.05, 0.8, 0.05, 0.05, 0])
    text = " ".join(lesson.saliency_story("Grad-CAM", probs, 4, a, signed=True))
    assert "happy (80%)" in text and "its label is sad, so it is wrong" in text
    assert "80% of the evidence for happy on the mouth and chin" in text
    assert "no evidence" in " ".join(lesson.saliency_story("Occlusion", probs, None, np.zeros((48, 48)), True))


def test_math_sentence_is_the_cross_entropy_of_the_label():
    probs = np.array([0.1, 0.0, 0.1, 0.5, 0.2, 0.1, 0.0])
    assert f"−ln 0.200 = **{-np.log(0.2):.3f}**" in lesson.math_story(probs, 4)


def test_lesson_sentences_change_with_the_run_they_read(runs):
    at = open_app("app_pages/lesson.py", run="small", query={"lesson": "confusion"})
    before = said(at)
    table = pd.read_csv(runs / "eval" / "PublicTest" / "confusion.csv", index_col=0)
    table.iloc[:, :] = 0
    table.loc["fear", "fear"], table.loc["fear", "surprise"], table.loc["happy", "happy"] = 3, 9, 12
    table.to_csv(runs / "eval" / "PublicTest" / "confusion.csv")
    metrics = runs / "eval" / "PublicTest" / "metrics.json"
    metrics.write_text(metrics.read_text())  # a re-evaluation rewrites metrics.json: the pages key on its time
    after = said(open_app("app_pages/lesson.py", run="small", query={"lesson": "confusion"}))
    assert after != before and "fear is read as surprise on 75% of fear faces** (9 of 12)" in after
    history = (runs / "history.csv").read_text().replace("0.49,", "0.91,")  # epoch 6's val_acc
    (runs / "history.csv").write_text(history)
    assert "91.0% in epoch 6" in said(open_app("app_pages/lesson.py", run="small", query={"lesson": "training"}))


def test_every_step_draws_and_next_back_and_the_list_move_through_them(runs):
    at = open_app("app_pages/lesson.py", run="small")
    assert at.title[0].value.startswith("1/6")
    for i, step in enumerate(lesson.STEPS[1:], 2):
        at.button(key="lesson_next").click().run()
        assert not at.exception, step.slug
        assert at.title[0].value == f"{i}/6 · {step.question}" and at.query_params["lesson"] == step.slug
    assert at.button(key="lesson_next").disabled
    at.button(key="lesson_back").click().run()
    assert at.query_params["lesson"] == "filters"
    at.sidebar.radio(key="lesson_list").set_value(1).run()
    assert at.title[0].value.startswith("2/6") and not at.exception
    strip = at.button_group(key="lesson_strip")
    assert strip.value == 1 and strip.options[0] == "1"  # the step shown, numbered from 1
    strip.set_value(4).run()
    assert at.title[0].value.startswith("5/6") and at.query_params["lesson"] == lesson.STEPS[4].slug
    at.button_group(key="lesson_strip").set_value(None).run()  # the step shown clicked again: it stays
    assert at.title[0].value.startswith("5/6") and at.button_group(key="lesson_strip").value == 4
    at.sidebar.toggle(key="lesson_presenter").set_value(True).run()
    assert at.query_params["presenter"] == "1" and any("font-size: 20px" in h.proto.body for h in at.get("html"))


def test_a_step_survives_a_reload_and_a_bad_step_opens_the_first(runs):
    at = open_app("app_pages/lesson.py", run="small", query={"lesson": "saliency", "presenter": "1"})
    assert at.title[0].value.startswith("4/6") and at.sidebar.toggle(key="lesson_presenter").value
    at = open_app("app_pages/lesson.py", run="small", query={"lesson": "<script>"})
    assert at.title[0].value.startswith("1/6") and at.query_params["lesson"] == "layers"


def face(label, model, votes=None):
    probs = np.full(7, 0.01)
    probs[model] = 0.94
    return QuizFace(f"f{label}{model}{votes}", label, probs, None if votes is None else np.array(votes))


def test_quiz_score_is_judged_by_the_annotators_and_falls_back_to_the_label():
    faces = [face(0, 3, [0, 0, 0, 8, 0, 0, 2]),   # annotators side with the model
             face(4, 4, [0, 0, 0, 0, 5, 0, 5]),   # a tie: the label judges
             face(2, 5)]                            # no votes: the label judges
    answers = {faces[0].id: 3, faces[1].id: 4, faces[2].id: 2}
    assert score(faces, answers) == {"faces": 3, "class": 3, "model": 2, "label": 2, "judged by annotators": 1}
    assert score(faces, {faces[0].id: 0}) == {"faces": 1, "class": 0, "model": 1, "label": 0,
                                              "judged by annotators": 1}
    assert model_beat_label(faces) == [faces[0]]


def test_quiz_faces_by_each_way_and_clear_refusals():
    rng = np.random.default_rng(0)
    n = 40
    probs = rng.dirichlet(np.ones(7), n)
    predictions = pd.DataFrame({"id": [str(i) for i in range(n)], "true": np.arange(n) % 7,
                                "pred": probs.argmax(1), **{f"p_{e}": probs[:, i] for i, e in enumerate(EMOTIONS)}})
    hard = quiz_faces(predictions, None, "hard", 5, seed=1)
    on_label = probs[np.arange(n), np.arange(n) % 7]
    assert {f.id for f in hard} <= {str(i) for i in np.argsort(on_label)[:20]}
    assert len({f.id for f in quiz_faces(predictions, None, "random", 30)}) == 30
    votes = pd.DataFrame({e: 0 for e in EMOTIONS}, index=predictions["id"])
    votes["named"] = True
    votes.loc["3", ["happy", "sad"]] = 5   # split evenly
    votes.loc["4", "happy"] = 10           # unanimous
    assert [f.id for f in quiz_faces(predictions, votes, "disagreeing", 5)] == ["3"]
    with pytest.raises(ValueError, match="no FER\\+ votes"):
        quiz_faces(predictions, None, "disagreeing", 5)
    with pytest.raises(ValueError, match="1 to 30 faces"):
        quiz_faces(predictions, None, "random", 31)


def test_a_quiz_played_through_in_apptest():
    """On the shipped cnn3 run and the bundled faces with their FER+ votes."""
    at = open_app("app_pages/quiz.py", run="cnn3")
    at.slider(key="quiz_count").set_value(3).run()
    next(b for b in at.button if b.label == "Start the quiz").click().run()
    quiz = at.session_state["quiz"]
    faces = quiz["faces"]
    assert len(faces) == 3 and not at.exception
    for i, f in enumerate(faces):
        assert any(f"Face {i + 1} of 3" in m.value for m in at.markdown)
        at.button_group[0].set_value(f.model if i else (f.model + 1) % 7).run()
        next(b for b in at.button if b.label == "Reveal").click().run()
        assert any(f"Dataset label: **{EMOTIONS[f.label]}**" in m.value for m in at.markdown)
        metrics = {m.label: m.value for m in at.metric}
        assert metrics["Class"].endswith(f"/ {i + 1}")
        next(b for b in at.button if b.label in ("Next face", "See the result")).click().run()
    points = score(faces, {f.id: (f.model if i else (f.model + 1) % 7) for i, f in enumerate(faces)})
    metrics = {m.label: m.value for m in at.metric}
    assert metrics == {"Class": f"{points['class']} / 3", "Model": f"{points['model']} / 3",
                       "Label": f"{points['label']} / 3"}
    assert any(b.label == "New quiz" for b in at.button)


def test_quiz_on_a_run_without_votes_refuses_disagreeing_faces_in_one_line(runs):
    at = open_app("app_pages/quiz.py", run="small")
    at.radio(key="quiz_way").set_value("disagreeing").run()
    next(b for b in at.button if b.label == "Start the quiz").click().run()
    assert "quiz" not in at.session_state
    assert len(at.error) == 1 and "choose random or hard ones" in at.error[0].value



def test_the_layers_step_names_densenets_block_that_never_trains_and_not_for_a_resnet():
    from fer_models.nets.structure import structure_of

    dense = structure_of("densenet201_fer")
    said = " ".join(lesson.layers_story(dense.totals, dense.layers, dense.findings))
    assert "denseblock4" in said and "1×1 map" in said and "1,048,576 weights never get a gradient" in said
    assert "**200 convolutions**" in said and "20.72 M weights" in said
    assert "the channels grow to 1920" in said  # what its chain ends at; its widest conv gives 896
    res = structure_of("resnet10_fer")
    said = " ".join(lesson.layers_story(res.totals, res.layers, res.findings))
    assert "never" not in said and "from 48×48 after the first conv to 6×6 after the last" in said


def test_the_annotators_sentence_counts_a_real_majority_on_a_shipped_run():
    """Recounted from the raw files: mistakes where at least 6 of the 10 FER+ votes name the model's class (the
    most common answer alone, which may be 4 votes, gave 572 here, not 455)."""
    from helpers import ROOT

    run = ROOT / "artifacts" / "runs" / "densenet201_fer"
    predictions = pd.read_csv(run / "eval" / "PublicTest" / "predictions.csv", dtype={"id": str})
    bundle = np.load(ROOT / "artifacts/data/fer2013_publictest.npz")
    columns = list(bundle["ferplus_columns"])  # FER+'s own order, by name to FER2013's classes
    ours = [columns.index(c) for c in ("anger", "disgust", "fear", "happiness", "sadness", "surprise", "neutral")]
    votes = dict(zip(bundle["ids"].astype(str), bundle["ferplus_votes"][:, ours]))
    wrong = predictions[predictions["true"] != predictions["pred"]]
    majority = sum(int(votes[i][p] >= 6) for i, p in zip(wrong["id"], wrong["pred"]))
    at = open_app("app_pages/lesson.py", run="densenet201_fer", query={"lesson": "confusion"})
    assert any(f"On **{majority:,} of its {len(wrong):,} mistakes** at least 6 of the ten" in m.value
               for m in at.markdown), [m.value for m in at.markdown]


def test_the_filters_step_names_the_last_conv_whole():
    said = lesson.filters_story("stage4.0.conv2", (6, 6), 256, {249: [5] * 9}, 3589, ("stage4.0.shortcut.0", 1, (6, 6)))
    # "`shortcut…`" read as a name the page had cut off
    # "the last conv" it is not: the skip path's projection runs beside the main path's last conv
    assert "The conv listed last, `stage4.0.shortcut.0`, has a 1×1 kernel that only mixes channels." in said[0]

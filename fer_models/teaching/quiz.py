"""Human or model? A class quiz on dataset faces: which faces to ask about, and the running score of the class,
the model and the dataset's label, each judged by the ten FER+ annotators where their votes exist (by the label
where they do not). Pure: the Quiz page keeps the answers and draws the faces.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from fer_models.core.constants import EMOTIONS

WAYS = {"random": "at random",
        "hard": "hard for the model (lowest probability on their label)",
        "disagreeing": "the annotators disagree on (no class gets 6 of 10 votes)"}
MAX_FACES = 30


@dataclass(frozen=True)
class QuizFace:
    id: str
    label: int
    probs: np.ndarray                 # the model's probabilities, 7
    votes: np.ndarray | None = None   # the FER+ annotators' votes by class, 7 (None: no votes for this face)

    @property
    def model(self) -> int:
        return int(np.argmax(self.probs))

    @property
    def crowd(self) -> int | None:
        """The annotators' single most common answer (None: no votes, or a tie at the top)."""
        if self.votes is None or self.votes.sum() == 0:
            return None
        top = self.votes.max()
        return int(self.votes.argmax()) if (self.votes == top).sum() == 1 else None

    def judge(self) -> int:
        """The answer the others are scored against: the annotators' when they have one, else the label."""
        return self.label if self.crowd is None else self.crowd


def _votes_of(votes: pd.DataFrame | None, face_id: str) -> np.ndarray | None:
    if votes is None or face_id not in votes.index or not bool(votes.at[face_id, "named"]):
        return None
    return votes.loc[face_id, list(EMOTIONS)].to_numpy(np.int64)


def quiz_faces(predictions: pd.DataFrame, votes: pd.DataFrame | None, way: str, count: int,
               seed: int = 0) -> list[QuizFace]:
    """`count` labelled faces (1 to MAX_FACES) chosen `way` (a key of WAYS), in a seeded random order. ValueError
    says why none can be chosen, e.g. no votes to find disagreement in."""
    if way not in WAYS:
        raise ValueError(f"unknown way to choose faces {way!r}: use one of {', '.join(WAYS)}")
    if not 1 <= count <= MAX_FACES:
        raise ValueError(f"a quiz has 1 to {MAX_FACES} faces, not {count}")
    labelled = predictions[predictions["true"] >= 0].reset_index(drop=True)
    probs = labelled[[f"p_{e}" for e in EMOTIONS]].to_numpy(np.float64)
    ids = labelled["id"].astype(str).to_numpy()
    rng = np.random.default_rng(seed)
    if way == "random":
        rows = rng.permutation(len(labelled))
    elif way == "hard":
        on_label = probs[np.arange(len(labelled)), labelled["true"].to_numpy(int)]
        rows = np.argsort(on_label, kind="stable")[:count * 4]  # a draw among the hardest, not always the same
        rows = rng.permutation(rows)
    else:
        split = [i for i, face_id in enumerate(ids) if (v := _votes_of(votes, face_id)) is not None
                 and 0 < v.max() * 2 <= v.sum()]
        if not split:
            raise ValueError("no FER+ votes cover these faces, so there are no faces the annotators disagree on: "
                             "choose random or hard ones")
        rows = rng.permutation(split)
    return [QuizFace(ids[r], int(labelled.at[r, "true"]), probs[r], _votes_of(votes, ids[r])) for r in rows[:count]]


def score(faces: list[QuizFace], answers: dict[str, int]) -> dict:
    """Points of the class, the model and the label over the answered faces, and what judged them."""
    answered = [f for f in faces if f.id in answers]
    by_crowd = sum(f.crowd is not None for f in answered)
    return {"faces": len(answered),
            "class": sum(answers[f.id] == f.judge() for f in answered),
            "model": sum(f.model == f.judge() for f in answered),
            "label": sum(f.label == f.judge() for f in answered),
            "judged by annotators": by_crowd}


def model_beat_label(faces: list[QuizFace]) -> list[QuizFace]:
    """Faces where the annotators side with the model against the dataset's label."""
    return [f for f in faces if f.crowd is not None and f.model == f.crowd != f.label]

"""A run evaluated from the Train page in a thread of the server, so that the page stays live while the faces are
scored (the page waited on it, greyed, for the 34 s a tiny run took on Training's 28,709 faces): how far it is,
then its results."""
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

from app_pages._shared import left_in_words, md
from fer_models.runs.evaluating import evaluate


@dataclass
class EvaluationJob:
    run: str
    splits: list[str]
    scored: dict = field(default_factory=dict)  # split -> (faces scored, faces), as the child says
    began: dict = field(default_factory=dict)   # split -> when it had read them and started scoring
    results: list | None = None
    announced: bool = False
    clock: Callable[[], float] = field(default=time.monotonic, repr=False)

    @property
    def running(self) -> bool:
        return self.results is None

    def heard(self, split: str, done: int, total: int) -> None:
        self.began.setdefault(split, self.clock())
        self.scored[split] = (done, total)

    def progress(self) -> tuple[float, str]:
        """The bar's share and words: faces scored of the split being scored, and the time left at its pace."""
        if not self.scored:
            return 0.0, f"Evaluating {md(self.run)}: starting, then reading the faces…"
        split = next(reversed(self.scored))
        done, total = self.scored[split]
        k = self.splits.index(split)
        pace = (self.clock() - self.began[split]) / done if done else 0.0
        left = f", {left_in_words(pace * (total - done))}" if done and done < total else ""
        return (min((k + done / max(total, 1)) / len(self.splits), 1.0),
                f"Evaluating {md(self.run)} on {md(split)} ({k + 1} of {len(self.splits)}): {done:,} of {total:,} "
                f"faces scored{left}")


def start_evaluation(run_path, name: str, data, splits: list[str]) -> EvaluationJob:
    job = EvaluationJob(name, list(splits))

    def work():
        try:
            job.results = evaluate(run_path, data, job.splits, progress=job.heard)
        except Exception as err:  # noqa: BLE001 - said on the card; the page must not wait forever
            job.results = [{"split": ", ".join(job.splits), "error": f"the evaluation failed ({type(err).__name__})"}]

    threading.Thread(target=work, name=f"evaluate {name}", daemon=True).start()
    return job

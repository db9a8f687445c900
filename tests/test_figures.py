"""The training-history figure's best-epoch labels stay inside the plot and readable."""
import pandas as pd

from fer_models.figures import history_figure


def history(val_acc):
    n = len(val_acc)
    return pd.DataFrame({"epoch": range(1, n + 1), "train_loss": [1.0] * n, "train_acc": [0.5] * n,
                         "val_loss": [1.0] * n, "val_acc": val_acc, "lr": [0.1] * n, "seconds": [10.0] * n})


def best_labels(fig):
    return [a for a in fig.layout.annotations if a.text.startswith("best ")]


def test_best_epoch_label_grows_away_from_the_nearer_edge():
    last, = best_labels(history_figure([("run", history([0.3, 0.4, 0.5, 0.6]))]))
    assert (last.x, last.y, last.text) == (4, 0.6, "best 60.0% (epoch 4)")
    assert last.xanchor == "right" and last.ax < 0
    first, = best_labels(history_figure([("run", history([0.6, 0.4, 0.5, 0.5]))]))
    assert first.x == 1 and first.xanchor == "left" and first.ax > 0


def test_best_epoch_labels_are_boxed_and_do_not_stack_on_each_other():
    labels = best_labels(history_figure([("a", history([0.3, 0.6])), ("b", history([0.3, 0.6]))]))
    assert len(labels) == 2 and all(a.bgcolor and a.bordercolor for a in labels)
    assert labels[0].ay != labels[1].ay  # the same best epoch and accuracy: offset, not on top of each other

"""The training-history figure's best-epoch label stays inside the plot."""
import pandas as pd

from fer_models.figures import history_figure


def history(val_acc):
    n = len(val_acc)
    return pd.DataFrame({"epoch": range(1, n + 1), "train_loss": [1.0] * n, "train_acc": [0.5] * n,
                         "val_loss": [1.0] * n, "val_acc": val_acc, "lr": [0.1] * n, "seconds": [10.0] * n})


def best_label(fig):
    return next(t for t in fig.data if t.mode == "markers+text")


def test_best_epoch_label_grows_away_from_the_nearer_edge():
    last = best_label(history_figure([("run", history([0.3, 0.4, 0.5, 0.6]))]))
    assert list(last.x) == [4] and last.textposition == "bottom left"
    first = best_label(history_figure([("run", history([0.6, 0.4, 0.5, 0.5]))]))
    assert list(first.x) == [1] and first.textposition == "bottom right"

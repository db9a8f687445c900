"""The training-history figure: the best epoch said in the legend, panels that line up, a readable rate."""
import pandas as pd

from fer_models.teaching.figures import history_figure


def history(val_acc, lr=0.1):
    n = len(val_acc)
    return pd.DataFrame({"epoch": range(1, n + 1), "train_loss": [1.0] * n, "train_acc": [0.5] * n,
                         "val_loss": [1.0] * n, "val_acc": val_acc, "lr": [lr] * n, "seconds": [10.0] * n})


def test_the_best_epoch_is_in_the_legend_and_starred_not_a_label_on_the_curves():
    fig = history_figure([("run", history([0.3, 0.6, 0.5]))])
    names = [t.name for t in fig.data if t.showlegend is not False]
    assert names == ["run validation: best 60.0% at epoch 2", "run training (dotted)"]
    assert not [a for a in fig.layout.annotations if "best" in a.text]
    (star,) = [t for t in fig.data if t.name == "run best"]
    assert (list(star.x), list(star.y)) == ([2], [0.6])
    assert fig.layout.legend.y >= 1 and fig.layout.legend.yanchor == "bottom"  # above the plots, not below


def test_every_panel_shares_the_longest_runs_epochs_and_the_rate_is_on_a_log_scale():
    fig = history_figure([("short", history([0.3, 0.6], lr=0.002)), ("long", history([0.3] * 40, lr=0.1))])
    ranges = {tuple(fig.layout[axis].range) for axis in ("xaxis", "xaxis2", "xaxis3", "xaxis4")}
    assert ranges == {(0.5, 40.5)}
    assert fig.layout.yaxis3.type == "log"  # AdamW's 0.002 and SGD's 0.1 both readable


def test_value_grids_write_numbers_without_a_minus_on_zero_and_with_one_on_negatives():
    import re

    import numpy as np

    from fer_models.teaching.figures import value_grid

    values = np.array([[-0.001, -0.53], [0.004, 1.0]])
    for font, written in ((None, ["0.00", "-0.53", "0.00", "1.00"]), (16, [".00", "-.53", ".00", "1.00"])):
        html = value_grid(values, "kernel", font=font)
        assert re.findall(r">([^<>]+)</td>", html) == written  # "-.00" read as a negative number

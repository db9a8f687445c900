"""Every command-line tool answers a bad argument or a bad file with exit code 2 and one line that names the
problem, never a traceback."""
import json

import numpy as np
import pytest
from warm_cli import run as warm

from fer_models.datasets.facedata import DataError
from fer_models.datasets.loading import load_faces
from fer_models.evaluation import evaluate
from fer_models.runs import registry as runs
from fer_models.teaching import report
from fer_models.training import command as train
from fer_models.training import ship
from helpers import make_evaluated_run, run_cli, write_fer_csv


@pytest.mark.parametrize("argv, says", [
    (["--label-smoothing", "5"], "label smoothing must be at most 0.9"),
    (["--lr", "-1"], "learning rate must be above 0"),
    (["--threads", "-1"], "threads must be at least 0"),
    (["--epochs", "two"], "'two' is not a whole number"),
    (["--device", "bogus"], "'bogus' is not auto, cpu, cuda or cuda:N"),
    (["--val-split", "../up"], "not a plain split name"),
    (["--recipe", "nope"], "--recipe 'nope' is unknown"),
])
def test_train_refuses_bad_settings(argv, says, tmp_path, capsys):
    code, line = run_cli(train.main, argv + ["--data", "x.csv", "--out", str(tmp_path / "r")], capsys)
    assert code == 2 and says in line


def test_train_refuses_an_out_that_is_a_file(tmp_path, capsys):
    (tmp_path / "file").write_text("")
    code, line = run_cli(train.main, ["--data", "x.csv", "--out", str(tmp_path / "file")], capsys)
    assert code == 2 and "is a file, not a run folder" in line
    code, line = run_cli(train.main, ["--data", "x.csv", "--out", str(tmp_path / "file" / "run")], capsys)
    assert code == 2 and "cannot make the run folder there" in line


def test_train_refuses_a_number_no_float_holds(tmp_path, capsys):
    code, line = run_cli(train.main, ["--epochs", "9" * 400, "--data", "x.csv", "--out", str(tmp_path / "r")], capsys)
    assert code == 2 and "epochs must be at most 100000 (--epochs a huge number)" in line


@pytest.fixture(scope="module")
def stopped_run(tmp_path_factory):
    """A finished one-epoch run, trained once for every crafted checkpoint below."""

    from helpers import ROOT
    root = tmp_path_factory.mktemp("crafted")
    data = write_fer_csv(root / "fer.csv")
    done = warm(["train", "--data", str(data), "--epochs", "1",
                 "--batch-size", "64", "--threads", "1", "--out", str(root / "r")],
                cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stderr
    return root / "r"


@pytest.mark.parametrize("header", [None, {"resume": "[1]"}, {"resume": json.dumps({"info": {}})},
                                    {"resume": json.dumps({"info": {"epoch": "zero", "history": 5},
                                                           "param_groups": []})},
                                    {"resume": "[" * 100_000 + "]" * 100_000},
                                    {"resume": json.dumps({"info": {"epoch": 10**400}, "param_groups": []})}])
def test_train_resume_refuses_a_crafted_checkpoint(header, tmp_path, capsys, stopped_run):
    import shutil

    from safetensors.torch import save_file

    from fer_models.nets.models import create_model
    out = tmp_path / "r"
    shutil.copytree(stopped_run, out)
    status = json.loads((out / "status.json").read_text())
    (out / "status.json").write_text(json.dumps({**status, "state": "stopped"}))
    tensors = {f"model/{k}": v.contiguous() for k, v in create_model("cnn3").state_dict().items()}
    save_file(tensors, out / "last.safetensors", metadata=header)
    code, line = run_cli(train.main, ["--out", str(out), "--resume", "--epochs", "2"], capsys)
    assert code == 2 and "--restart" in line


@pytest.mark.parametrize("config", ["\x00garbage", "[]", json.dumps({"args": {"epochs": "many"}}),
                                    json.dumps({"nothing": 1})])
def test_train_resume_refuses_a_bad_config(config, tmp_path, capsys):
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "config.json").write_text(config)
    code, line = run_cli(train.main, ["--out", str(tmp_path / "r"), "--resume"], capsys)
    assert code == 2 and "config.json" in line and "--restart" in line


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    return make_evaluated_run(root, "r"), write_fer_csv(root / "fer.csv", {"PublicTest": 7})


@pytest.mark.parametrize("argv, says", [
    (["--batch-size", "0"], "batch size must be 1 to 65536"),
    (["--device", "cuda"], "no such CUDA device here"),
    (["--device", "cuda:3"], "no such CUDA device here"),
    (["--device", "bogus"], "'bogus' is not auto, cpu, cuda or cuda:N"),
    (["--split", "../x"], "not a plain name"),
])
def test_evaluate_refuses_bad_arguments(argv, says, evaluated, capsys):
    run, data = evaluated
    code, line = run_cli(evaluate.main, ["--run", str(run), "--data", str(data)] + argv, capsys)
    assert code == 2 and says in line


def test_ship_refuses_a_garbage_status(evaluated, tmp_path, capsys):
    run, data = evaluated
    status = (run / "status.json").read_text()
    try:
        (run / "status.json").write_text("{\"state\": 3")
        code, line = run_cli(ship.main, ["--run", str(run), "--to", str(tmp_path / "to"), "--data", str(data)],
                             capsys)
    finally:
        (run / "status.json").write_text(status)
    assert code == 2 and "status.json: not valid JSON" in line and not (tmp_path / "to").exists()


def test_report_refuses_an_out_that_is_a_folder_before_building(evaluated, tmp_path, capsys, monkeypatch):
    run, _ = evaluated
    monkeypatch.setattr(report, "build_report", lambda *a, **k: pytest.fail("built before checking --out"))
    code, line = run_cli(report.main, ["--run", str(run), "--out", str(tmp_path)], capsys)
    assert code == 2 and "is a folder" in line


def test_runs_readme_missing_or_without_markers(tmp_path, capsys):
    code, line = run_cli(runs.main, ["--root", str(tmp_path), "--readme", str(tmp_path / "nope.md")], capsys)
    assert code == 2 and "no such file" in line
    (tmp_path / "README.md").write_text("# no table here\n")
    code, line = run_cli(runs.main, ["--root", str(tmp_path), "--readme", str(tmp_path / "README.md")], capsys)
    assert code == 2 and "models-table" in line


# ---------------------------------------------------------------- dataset files

def row(values=None):
    return " ".join(str(v) for v in (values if values is not None else [7] * 2304))


def test_a_unicode_digit_pixel_names_its_line(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text(f"emotion,pixels,Usage\n0,{row()},Training\n0,{row([7] * 2303 + ['²'])},Training\n")
    with pytest.raises(DataError, match=r"line 3: pixel 2304 is not an integer"):
        load_faces(bad)


def test_a_valid_row_with_extra_spaces_is_accepted(tmp_path):
    ok = tmp_path / "ok.csv"
    ok.write_text(f"emotion,pixels,Usage\n0,{row()} ,Training\n3, {row([9] * 2304)},Training\n")
    faces = load_faces(ok)
    assert faces.labels.tolist() == [0, 3] and (faces.images[1] == 9).all()


def class_tree(tmp_path, image_path_maker):
    folder = tmp_path / "tree" / "Training" / "happy"
    folder.mkdir(parents=True)
    image_path_maker(folder)
    return tmp_path / "tree"


def test_a_decompression_bomb_in_class_folders_is_refused_from_its_header(tmp_path):
    from PIL import Image

    def bomb(folder):
        Image.new("1", (10000, 10000)).save(folder / "bomb.png")  # a few kB on disk, 100 megapixels decoded
    with pytest.raises(DataError, match=r"bomb.png: 10000×10000 = 100 megapixels, over the limit of 25"):
        load_faces(class_tree(tmp_path, bomb))
    Image.new("1", (20000, 20000)).save(tmp_path / "tree" / "Training" / "happy" / "bomb.png")  # past PIL's own
    with pytest.raises(DataError, match=r"bomb.png: over the limit of 25 megapixels"):
        load_faces(tmp_path / "tree")


def test_a_large_16_bit_image_decodes_within_bounded_memory(tmp_path):
    import tracemalloc

    from PIL import Image

    def big(folder):
        ramp = (np.arange(5000, dtype=np.uint16)[None, :] * 13).repeat(5000, axis=0)
        Image.fromarray(ramp).save(folder / "big16.png")
    tree = class_tree(tmp_path, big)
    tracemalloc.start()
    faces = load_faces(tree)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert faces.images.shape == (1, 1, 48, 48) and faces.images.max() > 200
    # decoded 16-bit pixels alone are 50 MB; converting them whole to float64 cost 680 MB
    assert peak < 120 * 2**20, f"{peak / 2**20:.0f} MiB"


def test_ctrl_c_inside_the_csv_parser_is_an_interrupt(tmp_path, monkeypatch):
    """pyarrow takes SIGINT over while it parses and raises ArrowCancelled; the reader passes it on as the
    KeyboardInterrupt the trainer turns into a clean stop."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    def cancelled(*args, **kwargs):
        raise pa.ArrowCancelled("Operation cancelled. Detail: received signal 2")
    monkeypatch.setattr(pacsv, "read_csv", cancelled)
    data = write_fer_csv(tmp_path / "fer.csv", {"Training": 7})
    with pytest.raises(KeyboardInterrupt):
        load_faces(data)


@pytest.mark.parametrize("patterns", ["-1", "100000", "many"])
def test_atlas_patterns_out_of_range_are_refused_in_one_line(patterns, capsys):
    from fer_models.explain import atlas

    code, line = run_cli(atlas.main, ["--run", "x", "--patterns", patterns], capsys)
    assert code == 2 and "--patterns" in line


def test_the_runs_table_of_a_run_without_a_parameter_count(tmp_path, capsys):
    from helpers import make_run
    make_run(tmp_path, "r", {"state": "finished"}, [0.3], {"arch": "cnn3", "params": None})
    assert runs.main(["--root", str(tmp_path)]) == 0
    assert "| r | cnn3 | ? |" in capsys.readouterr().out


@pytest.mark.parametrize("teacher", ["/dev/zero", "empty_folder"])
def test_a_teacher_that_is_no_run_is_refused_naming_the_option(tmp_path, fer_csv, teacher):
    if teacher == "empty_folder":
        teacher = tmp_path / "empty_folder"
        teacher.mkdir()
    done = warm(["train", "--data", fer_csv, "--teacher", teacher, "--epochs", "1", "--batch-size", "64",
                 "--threads", "1", "--out", tmp_path / "student"], timeout=300)
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode != 0 and "Traceback" not in done.stderr, done.stderr
    assert lines[-1].startswith(f"error: --teacher {teacher}"), lines[-1]

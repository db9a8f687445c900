"""The library's layering: fer_models never imports streamlit, and the modules the dashboard reads run
folders with (settings, recipes, runfolder, runs) do not import torch."""
import subprocess
import sys

from helpers import ROOT


def imported_after(code: str) -> set[str]:
    done = subprocess.run([sys.executable, "-c", code + "\nimport sys; print(' '.join(sys.modules))"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return set(done.stdout.split())


def test_no_fer_models_module_imports_streamlit():
    modules = imported_after("import importlib, pkgutil, fer_models\n"
                             "for m in pkgutil.iter_modules(fer_models.__path__):\n"
                             "    importlib.import_module('fer_models.' + m.name)")
    assert "fer_models.train" in modules and "fer_models.report" in modules  # every module was imported
    assert not {m for m in modules if m.split(".")[0] == "streamlit"}


def test_reading_settings_and_run_folders_needs_no_torch():
    modules = imported_after("import fer_models.settings, fer_models.recipes, fer_models.runfolder, fer_models.runs")
    assert "torch" not in modules

"""The house rules a newcomer relies on: small modules and functions, ARCHITECTURE.md naming every subpackage,
the torch-free readers, and every fer-studio command in the README parsing as written. (The import direction
itself is lint-imports' contract in pyproject.toml, which CI runs beside ruff.)"""
import ast
import re
import shlex
import subprocess
import sys
from importlib import import_module
from pathlib import Path

import pytest

from fer_models.cli import COMMANDS
from helpers import ROOT

MAX_MODULE_LINES, MAX_FUNCTION_LINES = 450, 80
SUBPACKAGES = sorted(p.parent.name for p in (ROOT / "fer_models").glob("*/__init__.py"))


def python_files():
    return sorted([*(ROOT / "fer_models").rglob("*.py"), *(ROOT / "app_pages").glob("*.py"), ROOT / "app.py"])


def test_no_module_over_450_lines_and_no_function_over_80():
    too_long = []
    for path in python_files():
        text = path.read_text()
        name = path.relative_to(ROOT)
        if len(text.splitlines()) > MAX_MODULE_LINES:
            too_long.append(f"{name}: {len(text.splitlines())} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    too_long.append(f"{name}:{node.name}: {lines} lines")
    assert not too_long


def test_every_subpackage_says_what_it_owns_and_architecture_md_maps_them_all():
    text = (ROOT / "ARCHITECTURE.md").read_text()
    named = set(re.findall(r"`fer_models/(\w+)/`", text))
    assert named == set(SUBPACKAGES), "ARCHITECTURE.md and fer_models/ disagree on the subpackages"
    assert len(text.splitlines()) < 250
    for name in SUBPACKAGES:
        doc = import_module(f"fer_models.{name}").__doc__ or ""
        assert "May import" in doc or "Imports nothing" in doc, f"fer_models/{name}/__init__.py: say what it may import"


def test_reading_settings_and_run_folders_needs_no_torch():
    """The run picker and `fer-studio runs` read run folders; torch's import would cost them seconds."""
    code = ("import fer_models.cli, fer_models.runs.settings, fer_models.runs.recipes, fer_models.runs.folder, "
            "fer_models.runs.registry, sys; print(' '.join(sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "torch" not in done.stdout.split()


def test_the_console_script_lists_every_subcommand():
    script = Path(sys.executable).with_name("fer-studio")
    assert script.exists(), "fer-studio is not installed: pip install -r requirements.txt -e ."
    done = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0
    assert all(re.search(rf"^  {name}\s+\S", done.stdout, re.M) for name in COMMANDS)
    wrong = subprocess.run([str(script), "trian"], capture_output=True, text=True, timeout=60)
    assert wrong.returncode == 2 and wrong.stderr.count("\n") == 1 and "'trian' is not a subcommand" in wrong.stderr


@pytest.mark.parametrize("name", COMMANDS)
def test_every_subcommand_has_help(name, capsys):
    with pytest.raises(SystemExit) as done:
        import_module("fer_models.cli").main([name, "--help"])
    assert done.value.code == 0 and f"usage: fer-studio {name}" in capsys.readouterr().out


def readme_commands():
    """Every fer-studio command line in the README's code blocks, continuation lines joined."""
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)```", text, re.S)
    lines = "\n".join(blocks).replace("\\\n", " ").splitlines()
    found = []
    for line in lines:
        for match in re.finditer(r"(?:\.venv/bin/)?fer-studio (\w+)([^&|;#`]*)", line):
            found.append((match.group(1), match.group(2)))
    return found


def test_every_fer_studio_command_in_the_readme_parses_as_written():
    commands = readme_commands()
    assert {name for name, _ in commands} >= {"train", "evaluate", "ship", "report", "runs", "predict", "video",
                                              "mistakes", "atlas"}
    for name, rest in commands:
        args = [a for a in shlex.split(rest.replace("[", " ").replace("]", " ")) if a != "..."]
        module = import_module(COMMANDS[name][0])
        try:
            module.parser().parse_args(args)
        except SystemExit as err:
            pytest.fail(f"README: fer-studio {name}{rest} does not parse (exit {err.code})")


def test_the_quick_start_installs_what_the_tests_and_the_app_need():
    text = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    assert "pip install -r requirements.txt -e . && .venv/bin/streamlit run app.py" in text
    install = "uv pip install{} --compile-bytecode --python .venv/bin/python -r requirements-dev.txt -e ."
    assert install.format("") in text and install.format(" -q") in ci
    for step in (".venv/bin/ruff check .", ".venv/bin/lint-imports", ".venv/bin/python -m pytest"):
        assert step in text and step in ci

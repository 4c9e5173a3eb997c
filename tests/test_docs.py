"""The commands and code the README and ``docs/`` show still match the library.

``almea-pyg`` lines go through the CLI's parser, scripts' options are checked
against their ``--help``, Python blocks compile and their imports resolve. Running
them (minutes, some need the real data) is the job of the person releasing.
"""

import ast
import importlib
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from almea_pyg.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def blocks(language: str) -> list[tuple[str, int, str]]:
    """``(page, first line, text)`` of every fenced block in ``language``."""
    found = []
    for page in PAGES:
        fence, start, lines = None, 0, []
        for number, line in enumerate(page.read_text().splitlines(), 1):
            if line.startswith("```"):
                if fence is None:
                    fence, start, lines = line[3:].strip(), number + 1, []
                    continue
                if fence == language:
                    found.append((page.name, start, "\n".join(lines)))
                fence = None
            elif fence is not None:
                lines.append(line)
    return found


def command_argv(text: str) -> list[list[str]]:
    """The ``almea-pyg`` and ``python <script>`` commands of one shell line."""
    found = []
    for part in " ".join(shlex.split(text, comments=True)).split(" && "):
        argv = [a for a in part.split() if a != "..."]  # "..." elides options
        script = len(argv) > 1 and argv[0] == "python" and argv[1][-3:] == ".py"
        if argv and (argv[0] == "almea-pyg" or script):
            found.append(argv)
    return found


def commands() -> list[tuple[str, list[str]]]:
    """``(where, argv)`` of every command, in bash blocks and in inline code."""
    found = []
    for page, start, text in blocks("bash"):
        for offset, line in enumerate(text.replace("\\\n", " ").splitlines()):
            found += [(f"{page}:{start + offset}", a) for a in command_argv(line)]
    for page in PAGES:
        text = re.sub(r"^```.*?^```", "", page.read_text(), flags=re.M | re.S)
        for match in re.finditer(r"`((?:python|almea-pyg) [^`]+)`", text):
            where = f"{page.name} (inline)"
            line = match.group(1).replace("\\", "")
            found += [(where, argv) for argv in command_argv(line)]
    return found


COMMANDS = commands()


def test_the_pages_show_commands_and_code():
    names = {argv[0] if argv[0] == "almea-pyg" else argv[1] for _, argv in COMMANDS}
    assert {"almea-pyg", "examples/quickstart.py", "benchmarks/accuracy.py"} <= names
    assert len(blocks("python")) >= 5


def test_ci_runs_the_readme_test_command():
    """`.ci/run` runs the README's test command as it stands, install steps
    included, so a green CI rests on nothing installed by hand."""
    readme = (ROOT / "README.md").read_text().splitlines()
    comment = next(i for i, line in enumerate(readme) if line.startswith("# run the"))
    command = readme[comment + 1]
    assert "apt-get" in command and "chromium-driver" in command
    assert command.endswith("python -m pytest -q")
    assert command in (ROOT / ".ci" / "run").read_text().splitlines()


@pytest.mark.parametrize(
    "argv",
    [argv for _, argv in COMMANDS if argv[0] == "almea-pyg"],
    ids=[where for where, argv in COMMANDS if argv[0] == "almea-pyg"],
)
def test_cli_commands_parse(argv):
    args = build_parser().parse_args(argv[1:])
    assert callable(args.func)


SCRIPTS = sorted({argv[1] for _, argv in COMMANDS if argv[0] == "python"})


@pytest.mark.parametrize("script", SCRIPTS)
def test_script_options_exist(script):
    path = ROOT / script
    assert path.is_file(), f"{script} is shown in the docs but does not exist"
    help_text = subprocess.run(
        [sys.executable, str(path), "--help"],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        timeout=120,
    ).stdout
    for where, argv in COMMANDS:
        if argv[0] == "python" and argv[1] == script:
            for option in (a.split("=")[0] for a in argv[2:] if a.startswith("--")):
                assert re.search(rf"{option}\b", help_text), f"{where}: {option}"


@pytest.mark.parametrize(
    "block", blocks("python"), ids=lambda b: f"{b[0]}:{b[1]}" if b else ""
)
def test_python_blocks_compile_and_import(block):
    page, start, text = block
    tree = ast.parse(text, filename=f"{page}:{start}")
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            module = importlib.import_module(node.module)
            for alias in node.names:
                assert hasattr(module, alias.name), (
                    f"{page}:{start}: {node.module} has no {alias.name}"
                )
        elif isinstance(node, ast.Import):
            for alias in node.names:
                importlib.import_module(alias.name)

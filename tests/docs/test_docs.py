"""The README and docs/ cannot rot: every ```sh and ```python block that needs neither a GPU nor
the network runs here on small data, adapted as a user would adapt it (the folders it names are
small image folders, the weights a random checkpoint with the real file's keys, sizes that need
thousands of images made small); every relative link resolves; the README stays short.

A block that cannot run here (torchrun, a cluster, a workflow file) is marked by a line
``<!-- not run: REASON -->`` right above it. Each document runs in a fresh folder: its shell
lines in order through the command line's entry point, then its Python blocks in order as one
script in a subprocess (later blocks use what earlier ones define)."""

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from helpers import smooth_images, write_images
from ganmetrics.cli import cli

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
README_MAX_LINES = 250
FENCE = re.compile(r"^```(\w*)\n(.*?)^```$", re.S | re.M)
NOT_RUN = re.compile(r"<!-- not run: .+ -->\s*$")
FOLDERS = ("real", "fake", "samples", "ckpt1", "ckpt2", "ckpt3")
N_IMAGES = 10
# (pattern, replacement): the sizes a user would shrink for a quick look at ten images a folder
# (as many as IS has splits)
ADAPTED = [
    (re.compile(r"(--kid-subset-size )\d+"), r"\g<1>6"),
    (re.compile(r"(kid_subset_size=)\d+"), r"\g<1>6"),
    (re.compile(r"(--ci )\d+"), r"\g<1>3"),
    (re.compile(r"(\bci=)\d+"), r"\g<1>3"),
    (re.compile(r"(toy-data \S+ -n )\d+"), r"\g<1>16"),  # the trainer's examples
    (re.compile(r"(sample \S+ -n )\d+"), r"\g<1>10"),
    (re.compile(r"(--steps )\d+"), r"\g<1>2"),
    (re.compile(r"(--eval-every )\d+"), r"\g<1>2"),
    (re.compile(r"(--eval-samples )\d+"), r"\g<1>10"),
    (re.compile(r"(--batch-size )\d+"), r"\g<1>8"),
]


def blocks(document: Path, language: str) -> list[str]:
    """The fenced blocks of ``language`` in ``document`` that are not marked as not run."""
    text = document.read_text()
    found = []
    for match in FENCE.finditer(text):
        before = text[:match.start()].rstrip("\n").rsplit("\n", 1)[-1]
        if match.group(1) == language and not NOT_RUN.match(before):
            found.append(match.group(2))
    return found


def adapted(text: str) -> str:
    for pattern, replacement in ADAPTED:
        text = pattern.sub(replacement, text)
    return text


def shell_lines(block: str) -> list[str]:
    """A shell block's commands: continuation lines joined, comments and blank lines dropped."""
    joined = block.replace("\\\n", " ")
    lines = [shlex.split(line, comments=True) for line in joined.splitlines()]
    return [" ".join(map(shlex.quote, words)) for words in lines if words]


@pytest.fixture(scope="module")
def image_folders(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("doc-images")
    for i, name in enumerate(FOLDERS):
        write_images(root / name, smooth_images(N_IMAGES, (32, 32), seed=70 + i, offset=0.1 * i))
    return root


@pytest.fixture
def doc_folder(tmp_path, image_folders, weights_file, monkeypatch):
    """A fresh working folder holding the image folders, with the random weights and a private cache."""
    for name in FOLDERS:
        (tmp_path / name).symlink_to(image_folders / name, target_is_directory=True)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GANMETRICS_WEIGHTS", str(weights_file))
    monkeypatch.setenv("GANMETRICS_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path


def test_the_documents_have_examples_to_run():
    for name in ("README.md", "metrics.md", "statistics-files.md", "ci-gating.md", "extending.md"):
        document = next(d for d in DOCUMENTS if d.name == name)
        assert blocks(document, "sh") or blocks(document, "python"), name


@pytest.mark.parametrize("document", [d for d in DOCUMENTS if blocks(d, "sh")], ids=lambda d: d.name)
def test_the_shell_examples_run(document, doc_folder):
    runner = CliRunner()
    for block in blocks(document, "sh"):
        for line in shell_lines(adapted(block)):
            program, *args = shlex.split(line)
            assert program == "ganmetrics", (
                f"{document.name}: {line!r} is not a ganmetrics command: mark its block <!-- not run: REASON -->")
            result = runner.invoke(cli, args, catch_exceptions=False)
            # 1: a gate crossed, as the examples' thresholds are for real weights
            assert result.exit_code in (0, 1), f"{document.name}: {line}\n{result.output}"


@pytest.mark.parametrize("document", [d for d in DOCUMENTS if blocks(d, "python")], ids=lambda d: d.name)
def test_the_python_examples_run(document, doc_folder):
    code = "\n".join(adapted(block) for block in blocks(document, "python"))
    script = doc_folder / "example.py"
    script.write_text(code)
    environment = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, str(script)], cwd=doc_folder, env=environment, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, f"{document.name}:\n{done.stderr[-3000:]}"


LINK = re.compile(r"\]\(([^)\s]+)\)")


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda d: d.name)
def test_every_relative_link_resolves(document):
    for target in LINK.findall(document.read_text()):
        if re.match(r"[a-z]+:", target) or target.startswith("#"):
            continue
        path = (document.parent / target.split("#")[0]).resolve()
        assert path.exists(), f"{document.name}: link to {target} does not resolve"


def test_the_readme_stays_short():
    assert len((ROOT / "README.md").read_text().splitlines()) <= README_MAX_LINES

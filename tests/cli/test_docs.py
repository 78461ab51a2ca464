"""The man page and shell completion: irqtune(1) rendered from the commands' help and shipped in the wheel; the
completion scripts load in the shells and complete commands."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib

import pytest
from conftest import REPO, cli, require

MAN = REPO / "man" / "irqtune.1"
IRQTUNE = [os.path.join(os.path.dirname(sys.executable), "irqtune")]  # the console script: its name keys the protocol


def _commands() -> list[str]:
    from irqtune.cli import LAZY, main

    return sorted({*main.commands, *LAZY} - {"manpage"})


def test_the_committed_man_page_is_what_the_commands_help_renders():
    """man/irqtune.1 is `irqtune manpage` output: a changed --help that was not rendered again fails here (run
    `irqtune manpage --date $(date +%F) > man/irqtune.1`)."""
    text = MAN.read_text(encoding="utf-8")
    date = re.match(r'\.TH IRQTUNE 1 "([^"]+)"', text)
    assert date, text[:200]
    assert cli("manpage", "--date", date.group(1)).stdout == text


def test_the_wheel_installs_the_man_page():
    with open(REPO / "pyproject.toml", "rb") as f:
        data_files = tomllib.load(f)["tool"]["setuptools"]["data-files"]
    assert data_files["share/man/man1"] == ["man/irqtune.1"]


def test_man_renders_every_command_and_the_exit_status():
    require(shutil.which("man") is not None, "man (man-db) is not installed")
    page = subprocess.run(["man", "-l", str(MAN)], capture_output=True, text=True, env=os.environ | {"MANWIDTH": "100"},
                          timeout=60, check=True).stdout  # fmt: skip
    assert "IRQTUNE(1)" in page and "EXIT STATUS" in page and "--state-dir" in page
    for name in _commands():
        assert re.search(rf"^   {name}$", page, re.M), name  # a subsection per command


@pytest.mark.slow
def test_bash_completion_loads_and_completes_commands_and_choices():
    require(shutil.which("bash") is not None, "bash is not installed")
    script = cli("completion", "bash").stdout
    loaded = subprocess.run(["bash", "-c", f"{script}\ncomplete -p irqtune"], capture_output=True, text=True,
                            timeout=60)  # fmt: skip
    assert loaded.returncode == 0 and "_irqtune_completion" in loaded.stdout, loaded.stderr

    def complete(words: str, index: int) -> list[str]:
        env = os.environ | {"_IRQTUNE_COMPLETE": "bash_complete", "COMP_WORDS": words, "COMP_CWORD": str(index)}
        out = subprocess.run(IRQTUNE, capture_output=True, text=True, env=env, timeout=60, cwd=REPO).stdout
        return [line.split(",", 1)[1] for line in out.splitlines() if "," in line]

    assert {"status", "snapshot"} <= set(complete("irqtune s", 1)) and "manpage" not in complete("irqtune ", 1)
    assert set(complete("irqtune status --color ", 3)) == {"auto", "always", "never"}


def test_zsh_and_fish_scripts_name_the_command():
    for shell, mark in (("zsh", "#compdef irqtune"), ("fish", "complete --no-files --command irqtune")):
        assert mark in cli("completion", shell).stdout, shell
    assert cli("completion", "tcsh").exit_code == 2

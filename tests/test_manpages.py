"""The man pages under man/: every command has one, every page renders cleanly, every --help has an example.

Commands are read from ``lictools.cli.main.COMMANDS`` when the tests run, so a command added
later is checked without editing this file.
"""

from __future__ import annotations

import importlib
import re
import shutil
import subprocess
from pathlib import Path

import click
import pytest

from lictools import errors
from lictools.cli.main import COMMANDS, run

MAN_DIR = Path(__file__).resolve().parent.parent / "man"
PAGES = sorted(p for p in MAN_DIR.glob("man[1-8]/*.[1-8]") if p.is_file())


def command_paths(name: str) -> list[tuple[str, ...]]:
    """``(name,)`` and the path of every subcommand below it, walking nested groups."""
    module, attr, _ = COMMANDS[name]
    paths = []

    def walk(command: click.Command, path: tuple[str, ...]) -> None:
        paths.append(path)
        if isinstance(command, click.Group):
            ctx = click.Context(command, info_name=path[-1])
            for sub in command.list_commands(ctx):
                walk(command.get_command(ctx, sub), path + (sub,))

    walk(getattr(importlib.import_module(module), attr), (name,))
    return paths


def plain_text(page: Path) -> str:
    """The words of a roff page: comments, macro names, font changes and escapes removed."""
    lines = [line for line in page.read_text(encoding="utf-8").splitlines() if not line.startswith(('.\\"', "'\\\""))]
    text = "\n".join(lines)
    text = re.sub(r"\\f(\[[^\]]*\]|\(..|.)", "", text)
    for escape, plain in (("\\-", "-"), ("\\%", ""), ("\\&", ""), ("\\ ", " "), ("\\e", "\\")):
        text = text.replace(escape, plain)
    text = re.sub(r"^[.'][A-Za-z]+", " ", text, flags=re.M)
    return " ".join(text.replace('"', " ").split())


def mentions(text: str, path: tuple[str, ...]) -> bool:
    words = r"\s+".join(re.escape(word) for word in path)
    return re.search(rf"(?<![\w-]){words}(?![\w-])", text) is not None


def page_texts() -> dict[str, str]:
    return {page.name: plain_text(page) for page in PAGES}


def test_man_pages_exist() -> None:
    assert (MAN_DIR / "man1" / "lictools.1").is_file(), "man/man1/lictools.1 is missing"


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_command_and_subcommand_is_in_a_man_page(name: str) -> None:
    texts = page_texts()
    for path in command_paths(name):
        assert any(mentions(text, path) for text in texts.values()), (
            f"no man page under man/ mentions 'lictools {' '.join(path)}'"
        )


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_command_has_its_own_page_and_a_line_in_the_overview(name: str) -> None:
    texts = page_texts()
    assert f"lictools-{name}.1" in texts, f"command {name!r} has no man page man/man1/lictools-{name}.1"
    assert mentions(texts["lictools.1"], (name,)), f"man/lictools.1 does not list command {name!r}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_man_page_renders_without_warnings(page: Path) -> None:
    if shutil.which("groff") is None:
        pytest.skip("groff is not installed (apt-get install groff), so man pages cannot be rendered")
    result = subprocess.run(
        ["groff", "-man", "-ww", "-z", str(page)], capture_output=True, text=True, timeout=60
    )
    assert result.stderr == "", f"groff warns about {page.name}:\n{result.stderr}"
    assert result.returncode == 0


EXIT_CODES = sorted({value for name, value in vars(errors).items() if name.startswith("EXIT_")})


@pytest.mark.parametrize("page", [p for p in PAGES if p.suffix == ".1"], ids=lambda p: p.name)
def test_command_page_documents_every_exit_code(page: Path) -> None:
    text = page.read_text(encoding="utf-8")
    match = re.search(r'^\.SH\s+"?EXIT STATUS"?\s*$(.*?)(?=^\.SH\s)', text, flags=re.M | re.S)
    assert match, f"{page.name} has no EXIT STATUS section"
    section = match.group(1)
    missing = [code for code in EXIT_CODES if not re.search(rf"(?<![\w.]){code}(?![\w.])", section)]
    assert not missing, f"{page.name}: EXIT STATUS does not list exit code(s) {missing} (lictools/errors.py)"


@pytest.mark.parametrize("name", ["", *sorted(COMMANDS)])
def test_every_help_shows_an_example(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    for path in command_paths(name) if name else [()]:
        assert run([*path, "--help"]) == 0
        out = capsys.readouterr().out
        assert "Example" in out, f"'lictools {' '.join(path)} --help' shows no example"


@pytest.mark.skipif(shutil.which("man") is None, reason="man(1) is not installed (apt-get install man-db)")
def test_readme_manpath_line_lets_man_find_every_page():
    """README: export MANPATH="$PWD/man:" from the checkout, then 'man lictools' works."""
    import os

    env = dict(os.environ, MANPATH=f"{MAN_DIR}:")
    for page in PAGES:
        name, section = page.stem, page.suffix[1:]
        found = subprocess.run(["man", "-w", section, name], env=env, capture_output=True, text=True)
        assert found.returncode == 0, f"man {section} {name}: {found.stderr.strip()}"
        assert Path(found.stdout.strip()).resolve() == page.resolve()

"""README.md, the operator guide and docs/resilience.md say what the code does: they
render as a Markdown reader shows them (no table cut in two), every configuration key,
``PUCCICAM_*`` variable, command and option they name exists, the key tables are the
generated ones, and the guide's commands do what it says they do (a private backup, a
drop-in that verifies)."""

from __future__ import annotations

import itertools
import os
import re
import shlex
import shutil
import sqlite3
import subprocess
import tomllib
from pathlib import Path

import click
import pytest
from markdown_it import MarkdownIt

from puccicam.cli import main
from puccicam.config import CONFIG_ENV, SECTIONS, TOP_LEVEL, all_keys, env_name, markdown_table

ROOT = Path(__file__).parents[1]
# The two with the key table first; every check but that table's runs on all of them.
KEY_TABLE_DOCS = [ROOT / "README.md", ROOT / "docs" / "operator-guide.md"]
DOCS = [*KEY_TABLE_DOCS, ROOT / "docs" / "resilience.md"]
KEYS = {key for key, _, _ in all_keys()}
VARIABLES = {env_name(key) for key in KEYS} | {CONFIG_ENV}
# A name, not the family (`PUCCICAM_*`).
VARIABLE = re.compile(r"\bPUCCICAM_[A-Z0-9_]*[A-Z0-9]\b")
KEY = re.compile(rf"^(?:{'|'.join(TOP_LEVEL)}|(?:{'|'.join(SECTIONS)})\.[a-z_]+)$")
FILE_SUFFIXES = {"jpg", "jpeg", "png", "py", "json", "toml", "md", "html", "css", "js", "sh"}
# The program at the start of a command: `puccicam ...` or `/opt/.../bin/puccicam ...`,
# followed by a word or an option (not `cd puccicam && ...` or `-u puccicam /opt/...`).
PROGRAM = re.compile(r"(?:^|(?<=[\s`(]))(?:\S*/bin/)?puccicam(?=[ \t]+[a-z-])", re.M)
TABLE_ROW = re.compile(r"^\s*\|.*\|\s*$")
BEGIN, END = "<!-- keys: ", "<!-- /keys -->"


def _tokens(text: str) -> list:
    return MarkdownIt("commonmark").enable("table").parse(text)


def _code(tokens) -> list[tuple[str, str]]:
    """(kind, text) of every code span and code block: what a reader would type."""
    found = []
    for token in tokens:
        if token.type in ("fence", "code_block"):
            found.append((token.info.strip() or "code", token.content))
        for child in token.children or []:
            if child.type == "code_inline":
                found.append(("inline", child.content))
    return found


def broken_tables(tokens) -> list[str]:
    """Paragraphs that look like table rows: a table cut off by a blank line renders so."""
    return [
        f"line {token.map[0] + 1}: {token.content.splitlines()[0][:60]}"
        for previous, token in itertools.pairwise(tokens)
        if previous.type == "paragraph_open"
        and token.type == "inline"
        and any(TABLE_ROW.match(line) for line in token.content.splitlines())
    ]


def unknown_keys(tokens) -> list[str]:
    """Configuration keys named in code spans or TOML blocks that the code does not have."""
    named = []
    for kind, text in _code(tokens):
        if kind == "inline" and KEY.match(text) and text.rpartition(".")[2] not in FILE_SUFFIXES:
            named.append(text)
        elif kind == "toml":
            for name, value in tomllib.loads(text).items():
                if isinstance(value, dict):
                    named += [f"{name}.{key}" for key in value]
                else:
                    named.append(name)
    return sorted({key for key in named if key not in KEYS})


def unknown_variables(text: str) -> list[str]:
    """``PUCCICAM_*`` names anywhere in the text that set nothing: the product's
    variables are its keys' and ``PUCCICAM_CONFIG``; test-only ones are ``PCTEST_*``."""
    return sorted(set(VARIABLE.findall(text)) - VARIABLES)


def _option(command: click.Command, name: str) -> click.Parameter | None:
    if name in ("--help", "-h"):
        return click.Option(["--help"], is_flag=True)
    for param in command.params:
        if isinstance(param, click.Option) and name in (*param.opts, *param.secondary_opts):
            return param
    return None


def check_command(words: list[str]) -> list[str]:
    """What is wrong with ``puccicam WORDS...`` as the CLI would parse it (placeholders
    such as NAME and [brackets] allowed)."""
    problems: list[str] = []
    command: click.Command = main
    path = ["puccicam"]
    words = [w.strip("[],") for w in words]
    words = [w for w in words if w and w != "..."]
    i = 0
    while i < len(words):
        word = words[i]
        i += 1
        if word.startswith("-"):
            name = word.split("=", 1)[0]
            option = _option(command, name)
            if option is None:
                problems.append(f"'{' '.join(path)}' has no option {name}")
            elif not option.is_flag and "=" not in word and not option.count:
                i += 1  # its value
            continue
        if isinstance(command, click.Group):
            sub = command.commands.get(word)
            if sub is None:
                problems.append(f"'{' '.join(path)}' has no command {word!r}")
                break
            command = sub
            path.append(word)
    return problems


def commands(tokens) -> list[list[str]]:
    """Every ``puccicam ...`` command line in code spans and blocks, as words."""
    found = []
    for _kind, text in _code(tokens):
        for match in PROGRAM.finditer(text):
            before = text[: match.start()].split()
            if before and before[-1].startswith("-"):  # a value: sudo -u puccicam
                continue
            rest = text[match.end() :].split("\n", 1)[0]
            rest = re.split(r"\s#|\||;|&&|>|`", rest, maxsplit=1)[0]
            try:
                found.append(shlex.split(rest))
            except ValueError:
                found.append(rest.split())
    return found


def unknown_commands(tokens) -> list[str]:
    return [problem for words in commands(tokens) for problem in check_command(words)]


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_no_table_is_cut_in_two(doc):
    assert broken_tables(_tokens(doc.read_text())) == []


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_every_configuration_key_named_exists(doc):
    assert unknown_keys(_tokens(doc.read_text())) == []


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_every_puccicam_variable_named_exists(doc):
    assert unknown_variables(doc.read_text()) == []


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_every_command_and_option_shown_exists(doc):
    tokens = _tokens(doc.read_text())
    assert len(commands(tokens)) >= 5  # the scan finds the commands it should check
    assert unknown_commands(tokens) == []


@pytest.mark.parametrize("doc", KEY_TABLE_DOCS, ids=lambda p: p.name)
def test_the_key_table_is_the_generated_one(doc):
    text = doc.read_text()
    start = text.index("\n", text.index(BEGIN)) + 1
    shown = text[start : text.index(END, start)]
    assert shown == "\n" + markdown_table() + "\n", "run scripts/docs"
    table = [t for t in _tokens(shown) if t.type == "tr_open"]
    assert len(table) == len(KEYS) + 1  # one table, every key a row, after a header


def test_the_checks_find_what_the_old_docs_got_wrong():
    """The checks above can fail: a table cut by a blank line, a key, a command and an
    option the code does not have."""
    cut = "| key | meaning |\n|---|---|\n| `web.host` | x |\n\n| `web.port` | y |\n"
    assert broken_tables(_tokens(cut)) == ["line 5: | `web.port` | y |"]
    keys = "`web.hots` and `capture.interval`\n\n```toml\n[web]\nprot = 1\n```\n"
    assert unknown_keys(_tokens(keys)) == ["web.hots", "web.prot"]
    lines = (
        "`puccicam grab --once`, `puccicam grabs`, `puccicam check --data-dir D F`\n\n"
        "```sh\nsudo -u puccicam /opt/puccicam/venv/bin/puccicam user add NAME --emial E\n"
        "cd puccicam && git pull\npuccicam --config F config --example\n```\n"
    )
    assert unknown_commands(_tokens(lines)) == [
        "'puccicam' has no command 'grabs'",
        "'puccicam user add' has no option --emial",
    ]
    variables = "`PUCCICAM_SOAK=1 pytest`, PUCCICAM_CONFIG, `PUCCICAM_*`, PUCCICAM_WEB_PORT."
    assert unknown_variables(variables) == ["PUCCICAM_SOAK"]


def _guide() -> str:
    return (ROOT / "docs" / "operator-guide.md").read_text()


def test_the_guides_backup_is_readable_by_its_owner_only(tmp_path):
    sqlite3_cli = shutil.which("sqlite3")
    if sqlite3_cli is None:
        pytest.skip("sqlite3 is not installed here")
    line = next(line for line in _guide().splitlines() if ".backup" in line and "sqlite3 " in line)
    data = tmp_path / "var-lib-puccicam"
    data.mkdir()
    with sqlite3.connect(data / "puccicam.sqlite3") as db:
        db.execute("create table user (password_hash text)")
    # The guide's command as written, run as this user under a permissive umask,
    # against a copy of the data dir.
    command = line.replace("sudo -u puccicam ", "").replace("/var/lib/puccicam", str(data))
    old = os.umask(0o022)
    try:
        subprocess.run(["bash", "-c", command], check=True, timeout=30)
    finally:
        os.umask(old)
    backup = data / "accounts-backup.sqlite3"
    assert backup.stat().st_mode & 0o077 == 0, oct(backup.stat().st_mode)
    copy = next(line for line in _guide().splitlines() if "accounts-backup.sqlite3" in line
                and line.startswith("sudo install"))  # fmt: skip
    assert "-m 0600" in copy


def test_the_guides_data_dir_drop_in_waits_for_the_mount_and_verifies(tmp_path):
    guide = _guide()
    section = guide[guide.index("## 8.") : guide.index("## 9.")]
    drop_in = re.search(r"```ini\n(.*?)```", section, re.S).group(1)
    moved = re.search(r'data_dir = "([^"]+)"', section).group(1)
    assert f"RequiresMountsFor={moved}" in drop_in and f"ReadWritePaths={moved}" in drop_in
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed here")
    puccicam = ROOT / ".venv" / "bin" / "puccicam"
    for unit in ("puccicam-grabber.service", "puccicam-web.service"):
        text = (ROOT / "deploy" / unit).read_text()
        text = text.replace("/opt/puccicam/venv/bin/puccicam", str(puccicam))
        path = tmp_path / unit
        path.write_text(text + "\n" + drop_in)  # a drop-in's sections merge like this
        result = subprocess.run([analyze, "verify", str(path)], capture_output=True,
                                text=True, check=False)  # fmt: skip
        assert result.returncode == 0 and result.stderr.strip() == "", result.stderr


def test_the_guide_restarts_journald_after_the_volatile_drop_in():
    guide = _guide()
    step = guide[guide.index("journald-volatile.conf") :][:600]
    assert "systemctl restart systemd-journald" in step


def test_the_guide_stops_the_grabber_before_grab_once():
    guide = _guide()
    once = guide.index("puccicam grab --once")
    assert "systemctl stop puccicam-grabber" in guide[guide.rindex("```sh", 0, once) : once]


@pytest.mark.parametrize("doc", KEY_TABLE_DOCS, ids=lambda p: p.name)
def test_where_a_doc_suggests_environment_lines_it_keeps_secrets_out_of_them(doc):
    text = doc.read_text()
    for match in re.finditer(r"`Environment=", text):
        end = text.find("\n##", match.start())
        section = text[text.rfind("\n##", 0, match.start()) : end if end != -1 else None]
        assert "systemctl show" in section and "`ps`" in section, section[:80]
        assert "secret_key" in section or "credentials" in section, section[:80]


def test_the_guide_says_secrets_live_in_the_0640_file():
    guide = _guide()
    keys = guide[guide.index("## 9.") : guide.index("<!-- keys: ")]
    assert "web.secret_key" in keys and "0640" in keys and "credentials" in keys

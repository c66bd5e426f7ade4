"""Owner accounts from the command line: puccicam user add/list/remove/passwd."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from puccicam.cli import main


@pytest.fixture
def user_cli(tmp_path):
    runner = CliRunner()
    env = {"PUCCICAM_DATA_DIR": str(tmp_path / "data"), "PUCCICAM_WEB_BCRYPT_ROUNDS": "4"}

    def run(*args: str, input: str | None = None):
        return runner.invoke(main, ["user", *args], input=input, env=env)

    return run


def test_add_with_password_on_stdin_then_list(user_cli):
    result = user_cli("add", "pucci-owner", "--email", "me@example.org", "--password-stdin",
                      input="a good password\n")  # fmt: skip
    assert result.exit_code == 0, result.output
    listing = user_cli("list").output
    assert "pucci-owner" in listing and "me@example.org" in listing


def test_add_prompts_twice(user_cli):
    result = user_cli("add", "owner", input="a good password\na good password\n")
    assert result.exit_code == 0 and "Repeat for confirmation" in result.output
    mismatch = user_cli("add", "other", input="a good password\nanother one\n")
    assert mismatch.exit_code != 0


@pytest.mark.parametrize(
    ("password", "message"),
    [("short", "at least 8 bytes"), ("x" * 73, "at most 72 bytes"), ("ü" * 37, "at most 72 bytes")],
)
def test_password_policy_is_enforced_at_creation(user_cli, tmp_path, password, message):
    result = user_cli("add", "owner", "--password-stdin", input=password + "\n")
    assert result.exit_code == 1 and message in result.output
    # Refused before anything was made: no data dir, secret key or database.
    assert not (tmp_path / "data").exists()
    assert "no data dir" in user_cli("list").output


def test_72_byte_password_is_fine(user_cli):
    assert user_cli("add", "owner", "--password-stdin", input="ü" * 36 + "\n").exit_code == 0


def test_duplicate_and_bad_names_are_refused(user_cli):
    user_cli("add", "owner", "--password-stdin", input="a good password\n")
    assert (
        "already exists"
        in user_cli("add", "owner", "--password-stdin", input="a good password\n").output
    )
    assert (
        "username" in user_cli("add", "../x", "--password-stdin", input="a good password\n").output
    )


def test_passwd_and_remove(user_cli, tmp_path, make_config):
    from webapp import create_app, state

    user_cli("add", "owner", "--password-stdin", input="a good password\n")
    assert (
        user_cli("passwd", "owner", "--password-stdin", input="a newer password\n").exit_code == 0
    )
    app = create_app(make_config(data_dir=tmp_path / "data", web__bcrypt_rounds=4))
    with app.app_context():
        assert state().accounts.verify("owner", "a newer password") is not None
        assert state().accounts.verify("owner", "a good password") is None
    assert user_cli("remove", "owner").exit_code == 0
    assert "no account named" in user_cli("remove", "owner").output
    assert "no accounts yet" in user_cli("list").output


def test_no_account_exists_by_default(user_cli, tmp_path):
    (tmp_path / "data").mkdir()
    assert "no accounts yet" in user_cli("list").output
    assert list((tmp_path / "data").iterdir()) == []  # listing created nothing


def test_names_that_differ_only_by_case_are_one_name(user_cli):
    assert user_cli("add", "alice", "--password-stdin", input="a good password\n").exit_code == 0
    again = user_cli("add", "Alice", "--password-stdin", input="a good password\n")
    assert again.exit_code == 1 and "'alice' already exists" in again.output
    assert user_cli("list").output.count("lice") == 1
    # The other commands find it by any spelling too.
    assert (
        user_cli("passwd", "ALICE", "--password-stdin", input="a newer password\n").exit_code == 0
    )


@pytest.mark.parametrize(
    "args", [["bad name"], [".dot"], ["owner", "--email", "not an address"], ["a" * 65]]
)
def test_a_refused_name_or_email_leaves_nothing_behind(user_cli, tmp_path, args):
    result = user_cli("add", *args, "--password-stdin", input="a good password\n")
    assert result.exit_code == 1 and result.output.startswith("Error: ")
    assert not (tmp_path / "data").exists()  # no data dir, secret key or database


def test_list_on_a_mistyped_data_dir_creates_nothing(user_cli, tmp_path):
    result = user_cli("list")
    assert result.exit_code == 1
    assert f"no data dir {tmp_path / 'data'}" in result.output
    assert not (tmp_path / "data").exists()


@pytest.mark.parametrize("command", ["passwd", "remove"])
def test_no_such_account_is_said_before_asking_for_a_password(user_cli, tmp_path, command):
    user_cli("add", "owner", "--password-stdin", input="a good password\n")
    result = user_cli(command, "nobody")  # no input: a prompt would fail on end of input
    assert result.exit_code == 1
    assert "there is no account named 'nobody'" in result.output
    assert "Password" not in result.output


def test_passwd_with_a_short_password_changes_nothing(user_cli):
    user_cli("add", "owner", "--password-stdin", input="a good password\n")
    result = user_cli("passwd", "owner", "--password-stdin", input="short\n")
    assert result.exit_code == 1 and "at least 8 bytes" in result.output


@pytest.mark.parametrize("command", [["list"], ["add", "owner", "--password-stdin"]])
def test_a_database_that_is_not_sqlite_is_one_line_not_a_traceback(user_cli, tmp_path, command):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "puccicam.sqlite3").write_bytes(b"this is not a database" * 100)
    result = user_cli(*command, input="a good password\n")
    assert result.exit_code == 1, result.output
    assert result.output.startswith("Error: database ") and "not usable" in result.output
    assert result.output.count("\n") == 1 and "Traceback" not in result.output


def test_an_unusable_database_is_one_domain_error_at_start_and_in_commands(
    user_cli, tmp_path, make_config
):
    import sqlite3

    from puccicam.cli import _accounts
    from webapp import create_app
    from webapp.accounts import DatabaseUnusable

    data = tmp_path / "data"
    data.mkdir()
    database = data / "puccicam.sqlite3"
    database.write_bytes(b"this is not a database" * 100)
    config = make_config(data_dir=data, web__bcrypt_rounds=4)
    with pytest.raises(DatabaseUnusable, match=f"^database {database} is not usable: file is"):
        create_app(config)
    # A database the app starts on (the table exists) but whose queries fail.
    database.unlink()
    with sqlite3.connect(database) as conn:
        conn.execute('CREATE TABLE "user" (id INTEGER PRIMARY KEY)')
    conn.close()
    unusable = pytest.raises(DatabaseUnusable, match=f"^database {database} is not usable: no")
    with unusable, _accounts(config) as accounts:
        accounts.all()
    result = user_cli("list")
    assert result.exit_code == 1
    assert (
        result.output
        == f"Error: database {database} is not usable: no such column: user.username\n"
    )


def test_remove_and_passwd_by_another_spelling_report_the_stored_name(user_cli):
    user_cli("add", "alice", "--password-stdin", input="a good password\n")
    changed = user_cli("passwd", "ALICE", "--password-stdin", input="a newer password\n")
    assert changed.output == "password of alice changed; its sessions have ended\n"
    removed = user_cli("remove", "Alice")
    assert removed.exit_code == 0 and removed.output == "account alice removed\n"


def test_remove_and_passwd_by_another_spelling_log_the_stored_name(make_config, caplog):
    from webapp import create_app, state

    app = create_app(make_config(web__bcrypt_rounds=4))
    with app.app_context(), caplog.at_level("INFO", logger="webapp.accounts"):
        state().accounts.add("bob", "a good password")
        assert state().accounts.set_password("BOB", "a newer password") == "bob"
        assert state().accounts.remove("Bob") == "bob"
    assert [r.getMessage() for r in caplog.records] == [
        "account bob created",
        "password of bob changed; its sessions ended",
        "account bob removed",
    ]

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
def test_password_policy_is_enforced_at_creation(user_cli, password, message):
    result = user_cli("add", "owner", "--password-stdin", input=password + "\n")
    assert result.exit_code == 1 and message in result.output
    assert "no accounts yet" in user_cli("list").output


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


def test_no_account_exists_by_default(user_cli):
    assert "no accounts yet" in user_cli("list").output


def test_names_that_differ_only_by_case_are_one_name(user_cli):
    assert user_cli("add", "alice", "--password-stdin", input="a good password\n").exit_code == 0
    again = user_cli("add", "Alice", "--password-stdin", input="a good password\n")
    assert again.exit_code == 1 and "'alice' already exists" in again.output
    assert user_cli("list").output.count("lice") == 1
    # The other commands find it by any spelling too.
    assert (
        user_cli("passwd", "ALICE", "--password-stdin", input="a newer password\n").exit_code == 0
    )

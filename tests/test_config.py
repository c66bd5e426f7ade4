"""Config layers: defaults < TOML < PUCCICAM_* < command line; bad values name the key."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from puccicam.config import ConfigError, all_keys, env_name, is_secret, load_config


def test_defaults_match_the_original_camera_settings(tmp_path):
    config = load_config(env={"XDG_DATA_HOME": str(tmp_path)})
    assert config.capture.interval == 300
    assert (config.capture.width, config.capture.height, config.capture.jpeg_quality) == (
        320,
        240,
        80,
    )
    assert (config.camera.warmup_delay, config.camera.warmup_frames) == (3, 13)
    assert config.storage.retention_hours == 24
    assert config.data_dir.name == "puccicam"


def test_layers_apply_in_order(tmp_path):
    toml = tmp_path / "puccicam.toml"
    toml.write_text(
        'data_dir = "/srv/a"\n[capture]\ninterval = 60\njpeg_quality = 70\n[camera]\nsource = "1"\n'
    )
    env = {"PUCCICAM_CAPTURE_INTERVAL": "30", "PUCCICAM_CAPTURE_OVERLAY": "off"}
    config = load_config(toml, env=env, overrides={"capture.interval": 10.5, "camera.source": None})
    assert config.capture.interval == 10.5  # command line wins
    assert config.capture.jpeg_quality == 70  # from TOML
    assert config.capture.overlay is False  # from the environment
    assert config.camera.source == "1"  # None on the command line means "not given"
    assert config.data_dir == Path("/srv/a")


def test_config_file_from_environment(tmp_path):
    toml = tmp_path / "c.toml"
    toml.write_text("[storage]\nretention_hours = 2\n")
    assert load_config(env={"PUCCICAM_CONFIG": str(toml)}).storage.retention_hours == 2


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"PUCCICAM_CAPTURE_INTERVAL": "0.1"},
            "capture.interval (from PUCCICAM_CAPTURE_INTERVAL): must be at least 0.2",
        ),
        (
            {"PUCCICAM_CAPTURE_INTERVAL": "often"},
            "capture.interval (from PUCCICAM_CAPTURE_INTERVAL): expected a number",
        ),
        (
            {"PUCCICAM_CAPTURE_WIDTH": "wide"},
            "capture.width (from PUCCICAM_CAPTURE_WIDTH): expected an integer, got 'wide'",
        ),
        ({"PUCCICAM_CAPTURE_JPEG_QUALITY": "101"}, "capture.jpeg_quality"),
        ({"PUCCICAM_CAPTURE_OVERLAY": "maybe"}, "capture.overlay"),
        ({"PUCCICAM_LOG_LEVEL": "LOUD"}, "log_level"),
        ({"PUCCICAM_WEB_LOGIN_LIMIT_IP": "ten per minute"}, "web.login_limit_ip"),
        ({"PUCCICAM_WEB_LOGIN_LIMIT_USER": "20 per fortnight"}, "web.login_limit_user"),
    ],
)
def test_bad_environment_values_name_the_key(env, message):
    with pytest.raises(
        ConfigError, match=message.replace("(", r"\(").replace(")", r"\)").replace(".", r"\.")
    ):
        load_config(env=env)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[capture]\ninterval = 'fast'\n", "capture.interval"),
        ("[capture]\nintervall = 5\n", "unknown configuration key 'intervall' in \\[capture\\]"),
        ("[cam]\nsource = 'x'\n", r"unknown section \[cam\]"),
        ("[capture\n", "not valid TOML"),
        ("[capture]\noverlay = 1\n", "capture.overlay"),
    ],
)
def test_bad_toml_names_the_key(tmp_path, text, message):
    toml = tmp_path / "bad.toml"
    toml.write_text(text)
    with pytest.raises(ConfigError, match=message) as caught:
        load_config(toml, env={})
    assert (
        "capture" in str(caught.value) or "cam" in str(caught.value) or "TOML" in str(caught.value)
    )


def test_missing_config_file_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.toml", env={})


@pytest.mark.parametrize("doc", ["README.md", "docs/operator-guide.md"])
def test_docs_document_every_key(doc):
    text = (Path(__file__).parents[1] / doc).read_text()
    missing = [k for k, _, _ in all_keys() if f"`{k}`" not in text or env_name(k) not in text]
    assert not missing, f"{doc} does not document {missing}"


@pytest.mark.parametrize(
    ("env", "key"),
    [
        ({"PUCCICAM_CAPTURE_INTERVAL": "nan"}, "capture.interval"),
        ({"PUCCICAM_CAMERA_BACKOFF_MAX": "inf"}, "camera.backoff_max"),
        ({"PUCCICAM_STORAGE_RETENTION_HOURS": "nan"}, "storage.retention_hours"),
        ({"PUCCICAM_DATA_DIR": ""}, "data_dir"),
    ],
)
def test_non_finite_and_empty_values_are_refused(env, key):
    with pytest.raises(ConfigError, match=key):
        load_config(env=env)


def test_a_config_file_that_is_not_utf8(tmp_path):
    toml = tmp_path / "latin1.toml"
    toml.write_bytes("[pet]\nname = 'Brötchen'\n".encode("latin-1"))
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_config(toml, env={})


def test_the_example_file_names_every_key_and_loads_as_the_defaults(tmp_path):
    from puccicam.config import example_toml

    text = example_toml()
    for key, _default, _help in all_keys():
        assert f"# {key.rpartition('.')[2]} = " in text and env_name(key) in text
    uncommented = "\n".join(
        line[2:] if line.startswith("# ") and " = " in line else line for line in text.splitlines()
    )
    path = tmp_path / "all.toml"
    path.write_text(uncommented)
    everything = load_config(path, env={})
    defaults = load_config(env={}, overrides={"data_dir": "/var/lib/puccicam"})
    assert everything == defaults


def test_config_command_checks_and_prints_the_example(tmp_path):
    from click.testing import CliRunner

    from puccicam.cli import main

    runner = CliRunner()
    assert "[capture]" in runner.invoke(main, ["config", "--example"]).output
    ok = runner.invoke(main, ["config", "--data-dir", str(tmp_path)])
    assert ok.exit_code == 0 and "configuration ok" in ok.output
    bad = runner.invoke(main, ["config"], env={"PUCCICAM_CAPTURE_JPEG_QUALITY": "0"})
    assert bad.exit_code == 1 and "capture.jpeg_quality" in bad.output


def test_a_short_secret_key_is_refused_and_not_shown(tmp_path):
    short = "hunter2-is-my-key"
    with pytest.raises(ConfigError, match=r"web\.secret_key.*at least 32 bytes") as exc:
        load_config(env={"PUCCICAM_WEB_SECRET_KEY": short, "PUCCICAM_DATA_DIR": str(tmp_path)})
    assert short not in str(exc.value)
    config = load_config(
        env={"PUCCICAM_WEB_SECRET_KEY": "k" * 32, "PUCCICAM_DATA_DIR": str(tmp_path)}
    )
    assert config.web.secret_key == "k" * 32
    assert load_config(env={"PUCCICAM_DATA_DIR": str(tmp_path)}).web.secret_key == ""


@pytest.mark.parametrize(
    "value", ["31415926535897932384626433832795", "['hunter2 hunter2 hunter2 hunter2 hunter2']"]
)
def test_a_secret_key_of_the_wrong_type_is_refused_and_not_shown(tmp_path, value):
    toml = tmp_path / "puccicam.toml"
    toml.write_text(f"[web]\nsecret_key = {value}\n")
    with pytest.raises(ConfigError, match=r"web\.secret_key .*expected a string") as exc:
        load_config(toml, env={"PUCCICAM_DATA_DIR": str(tmp_path)})
    assert "31415" not in str(exc.value) and "hunter2" not in str(exc.value)
    assert "not shown" in str(exc.value)


@pytest.mark.parametrize(
    ("key", "kind", "value"),
    [
        ("web.secret_key", str, 31337),
        ("web.secret_key", str, ["hunter2"]),
        ("camera.password", int, "hunter2"),
        ("camera.password", float, "hunter2"),
        ("camera.password", int, ["hunter2"]),
        ("notify.api_token", bool, "hunter2"),
        ("notify.api_token", bool, 31337),
        ("notify.API_TOKEN", int, True),
        ("mail.smtp_password", Path, 31337),
    ],
)
def test_no_type_error_shows_the_value_of_a_secret(key, kind, value):
    from puccicam.config import _coerce

    with pytest.raises(ConfigError) as exc:
        _coerce(key, kind, value, "environment")
    assert key in str(exc.value) and str(value).strip("[]'") not in str(exc.value)


@pytest.mark.parametrize(
    ("meta", "value"),
    [({"min": 99999}, 31337), ({"max": 9}, 31337), ({"choices": ("a", "b")}, "hunter2")],
)
def test_no_limit_error_shows_the_value_of_a_secret(meta, value):
    from puccicam.config import _check_limits

    with pytest.raises(ConfigError) as exc:
        _check_limits("notify.password", meta, value, "environment")
    assert "notify.password" in str(exc.value) and str(value) not in str(exc.value)


def test_a_config_error_still_shows_an_ordinary_bad_value():
    with pytest.raises(ConfigError, match="expected a number, got 'soon'"):
        load_config(env={"PUCCICAM_CAPTURE_INTERVAL": "soon"})


@pytest.mark.parametrize(
    ("text", "suggestion"),
    [
        (
            "[capture]\nintervall = 5\n",
            "did you mean 'interval' under [capture] (capture.interval)?",
        ),
        ("interval = 5\n", "did you mean 'interval' under [capture] (capture.interval)?"),
        ("[capture]\nretention_hours = 5\n", "'retention_hours' under [storage]"),
        ("[web]\nlogin_limit = '1 per day'\n", "(web.login_limit_ip)?"),
        ("log_levle = 'DEBUG'\n", "'log_level' at the top of the file"),
        ("[captur]\ninterval = 5\n", "did you mean [capture]?"),
    ],
)
def test_unknown_toml_key_names_the_file_and_the_closest_key(tmp_path, text, suggestion):
    toml = tmp_path / "typo.toml"
    toml.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_config(toml, env={})
    message = str(caught.value)
    assert str(toml) in message and suggestion in message
    assert "pet.contact_url" not in message  # no dump of every key


def test_unknown_environment_variable_warns_once_and_is_ignored(caplog, monkeypatch):
    monkeypatch.setattr("puccicam.config._warned", set())
    env = {"PUCCICAM_CAMERA_SORCE": "x", "PUCCICAM_CAPTURE_INTERVAL": "60"}
    with caplog.at_level("WARNING", logger="puccicam.config"):
        assert load_config(env=env).capture.interval == 60
        load_config(env=env)
    warnings = [r.getMessage() for r in caplog.records]
    assert warnings == [
        "ignoring unknown environment variable PUCCICAM_CAMERA_SORCE; "
        "did you mean PUCCICAM_CAMERA_SOURCE (camera.source)?"
    ]


@pytest.mark.parametrize(
    ("var", "hint"),
    [
        ("PUCCICAM_FOO", ""),
        ("PUCCICAM_SEED", ""),
        ("PUCCICAM_TEST_DEVICE", ""),
        ("PUCCICAM_CAMERA_SORCE", "; did you mean PUCCICAM_CAMERA_SOURCE (camera.source)?"),
        ("PUCCICAM_WEB_SECRETKEY", "; did you mean PUCCICAM_WEB_SECRET_KEY (web.secret_key)?"),
        ("PUCCICAM_PORT", "; did you mean PUCCICAM_WEB_PORT (web.port)?"),
        ("PUCCICAM_INTERVAL", "; did you mean PUCCICAM_CAPTURE_INTERVAL (capture.interval)?"),
    ],
)
def test_unknown_variable_suggestions_compare_what_follows_the_prefix(
    caplog, monkeypatch, var, hint
):
    monkeypatch.setattr("puccicam.config._warned", set())
    with caplog.at_level("WARNING", logger="puccicam.config"):
        load_config(env={var: "x"})
    assert [r.getMessage() for r in caplog.records] == [
        f"ignoring unknown environment variable {var}{hint}"
    ]


def test_an_unknown_variable_stops_no_command(tmp_path):
    from click.testing import CliRunner

    from puccicam.cli import main

    result = CliRunner().invoke(
        main, ["config", "--data-dir", str(tmp_path)], env={"PUCCICAM_TEST_DEVICE": "/dev/x"}
    )
    assert result.exit_code == 0 and "configuration ok" in result.output


@pytest.mark.parametrize("level", ["debug", "Warning", "ERROR"])
def test_log_level_from_the_environment_is_case_insensitive(level):
    assert load_config(env={"PUCCICAM_LOG_LEVEL": level}).log_level == level.upper()


def test_rate_limits_parse_as_flask_limiter_reads_them():
    config = load_config(env={"PUCCICAM_WEB_LOGIN_LIMIT_IP": "5/minute, 20 per hour"})
    assert config.web.login_limit_ip == "5/minute, 20 per hour"


def test_a_relative_pet_photo_is_taken_from_the_config_files_directory(tmp_path, good_frame):
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "pucci.jpg").write_bytes(good_frame)
    toml = tmp_path / "etc" / "p.toml"
    toml.write_text("[pet]\nphoto = 'pucci.jpg'\n")
    assert load_config(toml, env={}).pet.photo == str(tmp_path / "etc" / "pucci.jpg")


def test_a_missing_pet_photo_is_refused_at_load(tmp_path):
    toml = tmp_path / "p.toml"
    toml.write_text("[pet]\nphoto = 'gone.jpg'\n")
    with pytest.raises(
        ConfigError, match=f"pet.photo \\(from {toml}\\): no file at {tmp_path}/gone.jpg"
    ):
        load_config(toml, env={})


def test_a_relative_pet_photo_is_served_not_a_500(tmp_path, monkeypatch):
    from tests.helpers.frames import frame_bytes
    from webapp import create_app

    portrait = frame_bytes("good-coffee-422.jpg")  # not the bundled portrait's bytes
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "pucci.jpg").write_bytes(portrait)
    toml = tmp_path / "etc" / "p.toml"
    toml.write_text(f"data_dir = '{tmp_path / 'data'}'\n[pet]\nphoto = 'pucci.jpg'\n")
    monkeypatch.chdir(tmp_path)  # not the config file's directory
    response = create_app(load_config(toml, env={})).test_client().get("/pet.jpg")
    assert response.status_code == 200 and response.data == portrait


# -- lists: notify.urls and notify.events -------------------------------------------------


def test_a_list_comes_from_a_toml_array_or_separated_words_in_the_environment(tmp_path):
    toml = tmp_path / "puccicam.toml"
    toml.write_text('[notify]\nurls = ["ntfys://ntfy.sh/a", "json://127.0.0.1:9/b"]\n')
    toml.chmod(0o600)
    assert load_config(toml, env={}).notify.urls == ("ntfys://ntfy.sh/a", "json://127.0.0.1:9/b")
    env = {"PUCCICAM_NOTIFY_URLS": " ntfys://ntfy.sh/a,json://127.0.0.1:9/b\n ntfys://ntfy.sh/c"}
    urls = load_config(env=env).notify.urls
    assert urls == ("ntfys://ntfy.sh/a", "json://127.0.0.1:9/b", "ntfys://ntfy.sh/c")
    assert load_config(env={"PUCCICAM_NOTIFY_EVENTS": "offline back"}).notify.events == (
        "offline",
        "back",
    )
    assert load_config(env={"PUCCICAM_NOTIFY_EVENTS": ""}).notify.events == ()


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"PUCCICAM_NOTIFY_EVENTS": "offline,moton"},
         "notify.events (from PUCCICAM_NOTIFY_EVENTS): 'moton' is not one of offline, back, "
         "disk, motion, daily"),
        ({"PUCCICAM_NOTIFY_DAILY_AT": "8pm"},
         "notify.daily_at (from PUCCICAM_NOTIFY_DAILY_AT): expected a time of day as HH:MM"),
        ({"PUCCICAM_NOTIFY_DAILY_AT": "24:00"},
         "notify.daily_at (from PUCCICAM_NOTIFY_DAILY_AT): expected a time of day as HH:MM"),
        ({"PUCCICAM_NOTIFY_OFFLINE_AFTER": "0.01"},
         "notify.offline_after (from PUCCICAM_NOTIFY_OFFLINE_AFTER): must be at least 0.05, "
         "got 0.01"),
        ({"PUCCICAM_NOTIFY_DISK_FREE_PERCENT": "60"},
         "notify.disk_free_percent (from PUCCICAM_NOTIFY_DISK_FREE_PERCENT): must be at most "
         "50, got 60"),
    ],
)  # fmt: skip
def test_bad_notify_values_name_the_key(env, message):
    with pytest.raises(ConfigError, match="^" + re.escape(message)):
        load_config(env=env)


def test_notify_urls_are_a_secret_in_every_message():
    with pytest.raises(ConfigError) as caught:
        load_config(env={"PUCCICAM_NOTIFY_URLS": "json://host/Tok3n9 nope://Tok3n9"})
    assert "Tok3n9" not in str(caught.value)
    assert is_secret("notify.urls") and not is_secret("notify.events")


def test_a_daily_time_may_be_empty_or_any_hh_mm():
    for value in ("", "0:05", "07:30", "23:59"):
        assert load_config(env={"PUCCICAM_NOTIFY_DAILY_AT": value}).notify.daily_at == value

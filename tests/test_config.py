from pathlib import Path

import pytest

from alprd.cli import main
from alprd.config import Config, ConfigError, load_config

EXAMPLE = Path(__file__).resolve().parent.parent / "config" / "alprd.example.toml"


def write(tmp_path, text: str) -> Path:
    p = tmp_path / "alprd.toml"
    p.write_text(text)
    return p


def test_example_file_is_valid_and_matches_defaults():
    assert load_config(EXAMPLE) == Config()


def test_defaults_without_a_file():
    cfg = load_config(None)
    assert cfg.camera.source == "synthetic"
    assert cfg.policy.retention_days == 30


def test_values_are_typed(tmp_path):
    cfg = load_config(write(tmp_path, '[camera]\nfps = 25\nsource = "video"\npath = "x.mp4"\n'))
    assert cfg.camera.fps == 25.0 and cfg.camera.source == "video"


@pytest.mark.parametrize(
    "text, expected",
    [
        ("[camera]\nfsp = 3\n", ["camera.fsp", "unknown key"]),
        ("[nosuchsection]\na = 1\n", ["nosuchsection", "unknown key"]),
        ('[vision]\nthreads = "many"\n', ["vision.threads", "'many'", "integer"]),
        ("[camera]\nfps = -1\n", ["camera.fps", "-1", "greater than 0"]),
        ("[policy]\nretention_days = 0\n", ["policy.retention_days", "0", "greater than or equal to 1"]),
        ('[camera]\nsource = "webcam"\n', ["camera.source", "'webcam'", "synthetic"]),
        ('[gps]\nmode = "fixed"\n', ["gps.latitude"]),
        ("[vision]\ndetector_input = 700\n", ["vision.detector_input", "700", "multiple of 32"]),
        ("[vision]\nzoom_window = [0.8, 0.2, 0.4, 0.9]\n", ["vision.zoom_window", "x1 < x2"]),
        ("[camera\n", ["not valid TOML"]),
        ("[hotlist]\nalert_repeat_window_s = inf\n", ["hotlist.alert_repeat_window_s", "inf", "finite number"]),
        ("[gps]\nlatitude = nan\n", ["gps.latitude", "nan", "finite number"]),
        ("[camera]\nfps = -inf\n", ["camera.fps", "-inf", "finite number"]),
        ("[vision]\nthreads = inf\n", ["vision.threads", "finite number"]),
        ("[hotlist]\ncategories = [\"bolo\", 1e999]\n", ["hotlist.categories", "inf"]),
    ],
)
def test_bad_files_name_key_value_and_what_is_allowed(tmp_path, text, expected):
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, text))
    for fragment in expected:
        assert fragment in str(err.value)


def test_missing_file_says_how_to_fix(tmp_path):
    with pytest.raises(ConfigError, match="alprd.example.toml"):
        load_config(tmp_path / "nope.toml")


def test_secrets_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("MQTT_PW", "s3cret")
    cfg = load_config(write(tmp_path, '[uplink]\npassword = "env:MQTT_PW"\n'))
    assert cfg.uplink.password == "s3cret"


def test_missing_environment_secret_is_an_error(tmp_path, monkeypatch):
    monkeypatch.delenv("NOPE_PW", raising=False)
    with pytest.raises(ConfigError, match="uplink.password: environment variable NOPE_PW is not set"):
        load_config(write(tmp_path, '[uplink]\npassword = "env:NOPE_PW"\n'))


@pytest.mark.parametrize("text", [
    '[hotlist]\nsync_key = "tooshort-secret"\n',
    '[uplink]\npassword = 12345678\n',
    '[camera]\nfps = "env:CAM_SECRET"\n',
    '[device]\nagency = "env:CAM_SECRET"\n',
])
def test_errors_never_show_secrets(tmp_path, monkeypatch, text):
    monkeypatch.setenv("CAM_SECRET", "tooshort-secret-" + "x" * 200)
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, text))
    assert "(secret, not shown)" in str(err.value)
    assert "tooshort-secret" not in str(err.value) and "12345678" not in str(err.value)


def test_errors_show_a_short_prefix_of_a_huge_value(tmp_path):
    huge = "x" * 10_000_000
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, f'[device]\nagency = "{huge}"\n[{huge}]\n'))
    message = str(err.value)
    assert len(message) < 1000
    assert "device.agency = 'xxx" in message and "10,000,002 characters" in message
    assert "10,000,000 characters): unknown key" in message


@pytest.mark.parametrize("content, problem", [
    (b"[camera]\nfps = 10 \xff\n", "not UTF-8"),
    (b"a = " + b"[" * 100_000, "not valid TOML"),
])
def test_unreadable_contents_are_config_errors(tmp_path, content, problem):
    p = tmp_path / "alprd.toml"
    p.write_bytes(content)
    with pytest.raises(ConfigError, match=problem):
        load_config(p)


def test_a_folder_is_not_a_config_file(tmp_path):
    with pytest.raises(ConfigError, match="is a folder"):
        load_config(tmp_path)


def test_config_check_command(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("MQTT_PW", "s3cret")
    good = write(tmp_path, '[uplink]\npassword = "env:MQTT_PW"\n')
    assert main(["config", "check", str(good)]) == 0
    out = capsys.readouterr().out
    assert "OK" in out and "s3cret" not in out  # secrets are never echoed
    bad = tmp_path / "bad.toml"
    bad.write_text("[camera]\nfps = 0\n")
    assert main(["config", "check", str(bad)]) == 2
    assert "camera.fps" in capsys.readouterr().err


def test_unreadable_file_is_a_config_error(tmp_path, monkeypatch):
    p = write(tmp_path, "[camera]\nfps = 10\n")

    def deny(*a, **k):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Path, "read_text", deny)
    with pytest.raises(ConfigError, match="permission denied"):
        load_config(p)

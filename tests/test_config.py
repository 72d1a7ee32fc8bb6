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
        ("[camera\n", ["not valid TOML"]),
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

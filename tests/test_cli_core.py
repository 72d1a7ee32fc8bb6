"""`alprd read`, `alprd eval` and logging, with the shipped models on rendered scenes."""

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import make_config

from alprd import synth
from alprd.auth import Users
from alprd.cli import core, main
from alprd.cli.common import parse_time
from alprd.config import LoggingConfig
from alprd.hotlist import repository
from alprd.hotlist.entries import Entry
from alprd.log import get_logger, setup_logging
from alprd.store import Store


def scene(path, text, seed, center=(900, 650), width=170):
    rng = np.random.default_rng(seed)
    img = synth.street_scene(1920, 1080, rng)
    box = synth.paste_plate_on_car(img, synth.render_plate(text, rng), center, width, rng)
    cv2.imwrite(str(path), img, [cv2.IMWRITE_JPEG_QUALITY, 95])
    return box


def test_read_prints_plates_and_boxes(tmp_path, capsys):
    img = tmp_path / "car.jpg"
    x1, y1, x2, y2 = scene(img, "7ABC123", 3)
    assert main(["read", str(img), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    [plate] = result["plates"]
    assert plate["plate"] == "7ABC123"
    box = plate["box"]  # named corners: top-left x1,y1 and bottom-right x2,y2 in image pixels
    assert abs(box["x1"] - x1) < 15 and abs(box["y1"] - y1) < 15
    assert abs(box["x2"] - x2) < 15 and abs(box["y2"] - y2) < 15
    assert len(plate["char_confidences"]) == 7
    assert plate["candidates"][0][0] == "7ABC123" and plate["region"] == "us" and plate["format_ok"]
    assert main(["read", str(img)]) == 0
    assert "7ABC123" in capsys.readouterr().out


def test_read_skips_a_file_that_is_not_an_image(tmp_path, capsys):
    bad = tmp_path / "notes.jpg"
    bad.write_text("not a jpeg")
    assert main(["read", str(bad)]) == 1
    assert "notes.jpg: not a JPEG, PNG, BMP or WebP image" in capsys.readouterr().err


def test_eval_on_a_flat_folder_with_plate_truth(tmp_path, capsys):
    plates = ["KZX4821", "3MRT905", "BJ72LQ"]
    for i, text in enumerate(plates):
        x1, y1, x2, y2 = scene(tmp_path / f"img{i}.jpg", text, 10 + i, center=(600 + 300 * i, 700))
        (tmp_path / f"img{i}.txt").write_text(f"img{i}.jpg {x1} {y1} {x2 - x1} {y2 - y1} {text}\n")
    assert main(["eval", str(tmp_path), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["images"] == 3 and summary["plates"] == 3
    assert summary["recall"] == 1.0
    assert summary["exact_read_accuracy"] >= 2 / 3
    assert summary["latency_ms_median"] > 0
    assert summary["false_reads_per_image"] == 0 and summary["dropped_by_ocr"] <= 1
    # 170 px plates in 1920-wide frames, about 2:1 boxes
    assert summary["plates_by_width_1080p"] == {"<40": 0, "40-80": 0, "80-160": 0, ">=160": 3}
    assert summary["recall_by_width_1080p"][">=160"] == 1.0 and summary["recall_by_width_1080p"]["<40"] is None
    assert sum(summary["plates_by_aspect"].values()) == 3
    # a street with no plate: every read is a false read
    cv2.imwrite(str(tmp_path / "empty.jpg"), synth.street_scene(1920, 1080, np.random.default_rng(1)))
    assert main(["eval", str(tmp_path), "--json", "--regions", "br"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["images"] == 4 and summary["false_reads_per_image"] is not None
    assert main(["eval", str(tmp_path), "--regions", "mars"]) == 1
    assert "--regions mars" in capsys.readouterr().err


def test_eval_on_a_yolo_folder(tmp_path, capsys):
    (tmp_path / "valid" / "images").mkdir(parents=True)
    (tmp_path / "valid" / "labels").mkdir()
    x1, y1, x2, y2 = scene(tmp_path / "valid" / "images" / "a.jpg", "PLT2024", 5)
    cx, cy, w, h = (x1 + x2) / 2 / 1920, (y1 + y2) / 2 / 1080, (x2 - x1) / 1920, (y2 - y1) / 1080
    (tmp_path / "valid" / "labels" / "a.txt").write_text(f"0 {cx} {cy} {w} {h}\n1 0.5 0.5 0.4 0.4\n")
    assert main(["eval", str(tmp_path), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["plates"] == 1 and summary["recall"] == 1.0
    assert summary["exact_read_accuracy"] is None  # YOLO labels carry no text
    assert main(["eval", str(tmp_path)]) == 0
    assert "recall_by_width_1080p: <40 n/a  40-80 n/a  80-160 n/a  >=160 1.0" in capsys.readouterr().out


def test_eval_on_a_missing_folder_is_a_clear_error(tmp_path, capsys):
    assert main(["eval", str(tmp_path / "nope")]) == 1
    assert "no such dataset folder" in capsys.readouterr().err


def test_logs_are_json_lines_when_not_on_a_terminal():
    stream = io.StringIO()
    setup_logging(LoggingConfig(), stream=stream)
    get_logger("t").info("read_stored", plate="ABC123")
    line = json.loads(stream.getvalue())
    assert line["event"] == "read_stored" and line["plate"] == "ABC123" and line["level"] == "info"
    assert line["timestamp"].endswith("Z")


def test_eval_read_figures_count_only_boxes_the_recogniser_read(tmp_path):
    """Detector precision counts every box; read precision only boxes that became reads."""
    from alprd.vision.base import Detection, PlateText
    from alprd.vision.evaluate import Sample, TruthBox, evaluate
    from alprd.vision.reader import PlateReader

    class Boxes:  # one box on the plate, two elsewhere
        def detect(self, image):
            return [Detection(100, 100, 200, 150, 0.9), Detection(300, 300, 400, 350, 0.8),
                    Detection(10, 10, 60, 40, 0.7)]

    class Texts:  # reads the plate and one distractor; the third box is "not a plate"
        def read(self, crops):
            return [PlateText("ABC123", 0.9, (0.9,) * 6), PlateText("XY7", 0.8, (0.8,) * 3),
                    PlateText("", 0.1, ())]

    path = tmp_path / "a.jpg"
    cv2.imwrite(str(path), np.zeros((480, 640, 3), np.uint8))
    truth = [TruthBox((102, 101, 199, 151), "ABC123"), TruthBox((500, 400, 600, 450), "ZZZ999")]
    summary = evaluate(PlateReader(Boxes(), Texts()), [Sample(path, truth)]).summary()
    assert summary["recall"] == 0.5 and summary["precision"] == round(1 / 3, 4)
    assert summary["read_recall"] == 0.5 and summary["read_precision"] == 0.5
    assert summary["exact_read_accuracy"] == 0.5


def test_run_without_a_unit_config_refuses_and_records_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ALPRD_CONFIG", raising=False)
    assert main(["run"]) == 2  # no config file: the defaults are a synthetic camera as alprd-dev
    err = capsys.readouterr().err
    assert "camera.source" in err and "device.id" in err and "alprd demo" in err
    assert not (tmp_path / "state").exists()

    conf = tmp_path / "unit.toml"
    conf.write_text(f'[device]\nid = "car12"\n[store]\nstate_dir = "{tmp_path / "s"}"\n')
    assert main(["--config", str(conf), "run"]) == 2
    err = capsys.readouterr().err
    assert "camera.source" in err and "device.id" not in err and str(conf) in err
    assert not (tmp_path / "s").exists()


def test_output_cut_short_by_head_exits_quietly(tmp_path):
    conf = tmp_path / "alprd.toml"
    conf.write_text(f'[store]\nstate_dir = "{tmp_path}"\n')
    store = Store(tmp_path / "alprd.db")
    Users(store, make_config(tmp_path).policy).add("off1", "operator", "a long password 1", "2026-01-15", by=None)
    repository.replace_department_list(store, (Entry(f"P{i:06d}", "stolen_vehicle") for i in range(20_000)), "t")
    store.close()
    alprd = Path(sys.executable).parent / "alprd"
    script = (f'"{alprd}" -c "{conf}" hotlist list --all --limit 20000 --user off1 2>"{tmp_path}/err" | head -1; '
              'echo "rc=${PIPESTATUS[0]}"')
    result = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=120, check=False,
                            env={**os.environ, "ALPRD_PASSWORD": "a long password 1"})
    first, rc = result.stdout.splitlines()
    assert rc == "rc=141" and first  # like `yes | head -1`
    assert (tmp_path / "err").read_text() == ""  # no traceback, no "Exception ignored"


def test_an_unexpected_error_is_one_line_with_a_pointer_to_debug(tmp_path, monkeypatch, capsys):
    def broken(args, config):
        raise RecursionError("maximum recursion depth exceeded")  # what a bug would raise

    monkeypatch.setattr(core, "cmd_read", broken)
    assert main(["read", str(tmp_path / "x.jpg")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("alprd: unexpected error: RecursionError: maximum recursion depth exceeded")
    assert "--debug" in err and "Traceback" not in err
    with pytest.raises(RecursionError):  # developers see where it came from
        main(["--debug", "read", str(tmp_path / "x.jpg")])
    monkeypatch.setenv("ALPRD_DEBUG", "1")
    with pytest.raises(RecursionError):
        main(["read", str(tmp_path / "x.jpg")])


def test_the_last_day_there_is_is_a_clear_error_not_an_overflow():
    with pytest.raises(ValueError, match="'9999-12-31' not understood"):
        parse_time("9999-12-31", end=True)

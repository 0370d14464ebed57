import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from abcweb import CheckpointError
from abcweb.model import checkpoint
from abcweb.model.lstm import ModelConfig, preset

from conftest import ROOT, random_checkpoint


def test_round_trip(tmp_path):
    ck = random_checkpoint(preset("tiny"))
    ck.info = {"steps": 42, "corpus": "irish", "val_bpc": 1.5}
    checkpoint.save(ck, tmp_path)
    back = checkpoint.load(tmp_path)
    assert back.config == ck.config and back.steps == 42 and back.info["corpus"] == "irish"
    for name, a in ck.weights.items():
        np.testing.assert_array_equal(back.weights[name], a)
    assert checkpoint.load(tmp_path / "model.json").steps == 42  # the manifest path works too


def test_float16_copy_is_half_the_size_and_close(tmp_path):
    ck = random_checkpoint(preset("small"))
    checkpoint.save(ck, tmp_path / "a")
    checkpoint.save(ck, tmp_path / "b", dtype="float16")
    size = lambda d: sum(f.stat().st_size for f in d.glob("*.npz"))  # noqa: E731
    assert size(tmp_path / "b") < 0.55 * size(tmp_path / "a")
    back = checkpoint.load(tmp_path / "b")
    assert back.weights["dense/kernel"].dtype == np.float32
    np.testing.assert_allclose(back.weights["dense/kernel"], ck.weights["dense/kernel"],
                               rtol=1e-3, atol=1e-4)


def test_saving_again_replaces_old_files(tmp_path):
    ck = random_checkpoint(preset("tiny"))
    checkpoint.save(ck, tmp_path)
    ck.weights["dense/bias"] += 1
    checkpoint.save(ck, tmp_path)
    assert len(list(tmp_path.glob("model-*.npz"))) == 1
    np.testing.assert_array_equal(checkpoint.load(tmp_path).weights["dense/bias"],
                                  ck.weights["dense/bias"])


def _weights_file(folder):
    return next(folder.glob("model-*.npz"))


@pytest.mark.parametrize("damage", ["flip", "truncate", "delete", "manifest", "format", "shape",
                                    "nan"])
def test_damaged_checkpoint_gives_clear_error(tmp_path, damage):
    ck = random_checkpoint(preset("tiny"))
    if damage == "nan":
        ck.weights["dense/bias"][0] = np.nan
    checkpoint.save(ck, tmp_path)
    f = _weights_file(tmp_path)
    manifest = tmp_path / "model.json"
    if damage == "flip":
        data = bytearray(f.read_bytes())
        data[len(data) // 2] ^= 0xFF
        f.write_bytes(bytes(data))
    elif damage == "truncate":
        f.write_bytes(f.read_bytes()[:1000])
    elif damage == "delete":
        f.unlink()
    elif damage == "manifest":
        manifest.write_text(manifest.read_text()[:50])
    elif damage == "format":
        manifest.write_text(json.dumps({"hello": 1}))
    elif damage == "shape":
        m = json.loads(manifest.read_text())
        m["config"]["units"] = 64
        manifest.write_text(json.dumps(m))
    with pytest.raises(CheckpointError) as e:
        checkpoint.load(tmp_path)
    assert str(tmp_path) in str(e.value)


def test_missing_folder(tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint"):
        checkpoint.load(tmp_path / "nowhere")


def test_crash_while_writing_manifest_keeps_previous(tmp_path, monkeypatch):
    old = random_checkpoint(preset("tiny"), seed=1)
    old.info = {"steps": 1}
    checkpoint.save(old, tmp_path)
    new = random_checkpoint(preset("tiny"), seed=2)
    new.info = {"steps": 2}
    real_replace = os.replace

    def crash(src, dst):
        if str(dst).endswith("model.json"):
            raise KeyboardInterrupt("power cut")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(KeyboardInterrupt):
        checkpoint.save(new, tmp_path)
    monkeypatch.undo()
    back = checkpoint.load(tmp_path)
    assert back.steps == 1
    np.testing.assert_array_equal(back.weights["dense/bias"], old.weights["dense/bias"])
    assert not list(tmp_path.glob(".*.tmp"))  # no half-written files left behind


@pytest.mark.slow
def test_killing_a_process_mid_save_keeps_a_loadable_checkpoint(tmp_path):
    """SIGKILL a process that saves a big checkpoint in a loop: whenever it dies, the folder
    holds a complete checkpoint."""
    script = (
        "import sys; sys.path.insert(0, {!r}); sys.path.insert(0, {!r})\n"
        "from conftest import random_checkpoint\n"
        "from abcweb.model import checkpoint\nfrom abcweb.model.lstm import preset\n"
        "i = 0\n"
        "while True:\n"
        "    ck = random_checkpoint(preset('small'), seed=i); ck.info = {{'steps': i}}\n"
        "    checkpoint.save(ck, {!r}); i += 1; print(i, flush=True)\n"
    ).format(str(ROOT), str(ROOT / "tests"), str(tmp_path))
    for delay in (1.5, 2.2, 2.9):
        p = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
        p.stdout.readline()  # at least one complete save
        time.sleep(delay % 1.0 + 0.05)
        p.send_signal(signal.SIGKILL)
        p.wait()
        ck = checkpoint.load(tmp_path)
        assert ck.config == preset("small")
        expected = random_checkpoint(preset("small"), seed=ck.steps)
        np.testing.assert_array_equal(ck.weights["dense/bias"], expected.weights["dense/bias"])


def test_config_validation():
    with pytest.raises(ValueError):
        ModelConfig(units=0).validate()
    with pytest.raises(ValueError):
        ModelConfig(vocab="aa").validate()
    assert preset("notebook").parameter_count() == 256 * 96 + 4 * 1024 * (256 + 1024 + 1) + \
        1024 * 96 + 96


def test_leftovers_of_a_killed_save_are_removed_by_the_next(tmp_path):
    ck = random_checkpoint(preset("tiny"))
    checkpoint.save(ck, tmp_path)
    (tmp_path / "model-0123456789ab.npz").write_bytes(b"half")  # killed before its manifest
    (tmp_path / ".model.json.x1.tmp").write_text("{")
    ck.weights["dense/bias"] += 1
    checkpoint.save(ck, tmp_path)
    named = json.loads((tmp_path / "model.json").read_text())["files"]["weights"]["file"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [named, "model.json"]

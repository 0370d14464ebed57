import subprocess
import sys

import pytest

from abcweb.model import checkpoint

from conftest import ROOT, random_checkpoint


def cli(*args, stdin=None, timeout=300):
    return subprocess.run([sys.executable, "-m", "abcweb", *map(str, args)], input=stdin,
                          capture_output=True, text=True, cwd=ROOT, timeout=timeout)


def assert_clean_error(p, *words):
    assert p.returncode == 2
    assert p.stdout == ""
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1, p.stderr
    assert "Traceback" not in p.stderr
    for w in words:
        assert w in lines[0]


def test_help_lists_the_commands():
    p = cli("--help")
    assert p.returncode == 0
    for cmd in ("sample", "train", "evaluate", "render"):
        assert cmd in p.stdout
    p = cli("sample", "--help")
    assert p.returncode == 0 and "--temperature" in p.stdout and "--top-k" in p.stdout


def test_sample_takes_a_shipped_models_id_as_links_carry_it(tiny_dir, tmp_path):
    folder = tmp_path / "weights"
    checkpoint.save(checkpoint.load(tiny_dir), folder)
    earlier = tmp_path / "earlier"
    checkpoint.save(random_checkpoint(checkpoint.load(tiny_dir).config, seed=7), earlier)
    old_id = checkpoint.model_id(earlier)
    earlier.rename(folder / old_id)
    args = ("sample", "--weights", folder, "--seed", 5, "--length", 60)
    by_id = cli(*args, "--model", old_id)
    assert by_id.returncode == 0, by_id.stderr
    assert by_id.stdout == cli("sample", "--weights", folder / old_id, "--seed", 5,
                               "--length", 60).stdout
    assert by_id.stdout != cli(*args).stdout
    current = cli(*args, "--model", checkpoint.model_id(folder))
    assert current.stdout == cli(*args).stdout
    assert_clean_error(cli(*args, "--model", "0123456789ab"), "0123456789ab", old_id)


def test_sample_prints_abc(tiny_dir):
    p = cli("sample", "--weights", tiny_dir, "--seed", 3, "--length", 80, "--prime", "X:1\\nT:",
            "--top-k", 10, "--temperature", 0.8)
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith("X:1\nT:")
    assert len(p.stdout) <= len("X:1\nT:") + 80 + 1


def test_sample_top_p_is_the_librarys(tiny_dir):
    from abcweb import load_sampler
    p = cli("sample", "--weights", tiny_dir, "--seed", 4, "--length", 120, "--top-p", 0.5)
    assert p.returncode == 0, p.stderr
    s = load_sampler(tiny_dir, backend="numpy", workers=False)
    assert p.stdout.rstrip("\n") == s.generate("X:", 120, 1.0, 4, top_p=0.5).text.rstrip("\n")
    assert p.stdout != cli("sample", "--weights", tiny_dir, "--seed", 4, "--length", 120).stdout


@pytest.mark.parametrize("args, words", [
    (["--temperature", "hot"], ["temperature", "hot"]),
    (["--temperature", "-1"], ["temperature"]),
    (["--temperature", "nan"], ["temperature"]),
    (["--length", "-5"], ["length"]),
    (["--length", "99999999"], ["length"]),
    (["--top-k", "x"], ["top-k"]),
    (["--top-p", "0"], ["top-p", "above 0"]),
    (["--top-p", "1.2"], ["top-p"]),
    (["--seed", "1.5"], ["seed"]),
    (["--prime", "X:\u00e9"], ["'\u00e9'"]),
    (["--prime", ""], ["empty"]),
    (["--weights", "/nonexistent/folder"], ["no checkpoint"]),
    (["--bogus"], ["unrecognized"]),
])
def test_sample_bad_arguments(tiny_dir, args, words):
    base = [] if "--weights" in args else ["--weights", tiny_dir]
    assert_clean_error(cli("sample", *base, *args), *words)


def test_unknown_command():
    assert_clean_error(cli("dance"), "invalid choice")


def test_damaged_weights(tiny_dir, tmp_path):
    import shutil
    bad = tmp_path / "bad"
    shutil.copytree(tiny_dir, bad)
    f = next(bad.glob("model-*.npz"))
    f.write_bytes(f.read_bytes()[:100])
    assert_clean_error(cli("sample", "--weights", bad), "damaged")


def test_train_errors(tmp_path):
    assert_clean_error(cli("train", "--out", tmp_path / "x"), "nothing to train on")
    assert_clean_error(cli("train", "--out", tmp_path / "x", "--corpus", tmp_path / "no.abc"),
                       "cannot read")
    assert_clean_error(cli("train", "--out", tmp_path / "x", "--recipe", "shipped"), "--irish")
    assert_clean_error(cli("train", "--out", tmp_path / "x", "--corpus", "miscFolk", "--lr", "5"),
                       "learning rate")


@pytest.mark.slow
def test_train_then_resume_from_the_cli(irish_path, tmp_path):
    abc = tmp_path / "tunes.abc"
    abc.write_text("\n\n".join(irish_path.read_text().split("\n\n")[:60]))
    out = tmp_path / "run"
    args = ["train", "--corpus", abc, "--preset", "tiny", "--out", out, "--batch", 8,
            "--seq-len", 32, "--eval-every", 5, "--lr", 0.01]
    p = cli(*args, "--steps", 10)
    assert p.returncode == 0, p.stderr
    assert checkpoint.load(out).steps == 10
    p = cli(*args, "--steps", 15)
    assert p.returncode == 0, p.stderr
    assert "resuming" in p.stderr
    ck = checkpoint.load(out)
    assert ck.steps == 15 and [h["step"] for h in ck.info["history"]] == [5, 10, 15]
    p = cli("sample", "--weights", out, "--length", 30)
    assert p.returncode == 0 and p.stdout.startswith("X:")


@pytest.mark.slow
def test_evaluate_prints_the_figures(irish_path):
    import json
    p = cli("evaluate", "--irish", irish_path, "--samples", 3, "--length", 300, "--json",
            timeout=600)
    assert p.returncode == 0, p.stderr
    r = json.loads(p.stdout)
    assert 0 < r["heldout_bpc"] < 8 and r["heldout_chars"] == 21555
    assert r["generated"]["tunes"] == 3 and 0 <= r["generated"]["valid_share"] <= 1
    assert r["real_heldout"]["tunes"] == 80 and r["real_heldout"]["valid_share"] > 0.85
    assert r["notebook_style"]["tunes"] == 10
    assert_clean_error(cli("evaluate", "--irish", "/no/such/irish.abc"), "cannot read")


@pytest.mark.slow
def test_training_keeps_tensorflows_start_up_lines_quiet_unless_verbose(tmp_path):
    """Run as a user would, with no TF_CPP_MIN_LOG_LEVEL of their own: our lines only."""
    import os

    from conftest import jigs

    (tmp_path / "jigs.abc").write_text(jigs(30))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TF_", "ABSL_"))}
    noise = ("oneDNN", "cpu_feature_guard", "absl::InitializeLog", "rebuild TensorFlow")

    def train(*flags):
        out = tmp_path / f"run{len(flags)}"
        return subprocess.run(
            [sys.executable, "-m", "abcweb", *flags, "train", "--preset", "tiny", "--corpus",
             str(tmp_path / "jigs.abc"), "--steps", "2", "--batch", "4", "--out", str(out)],
            capture_output=True, text=True, cwd=ROOT, env=env, timeout=300)

    quiet = train()
    assert quiet.returncode == 0, quiet.stderr
    assert "saved" in quiet.stderr
    assert not any(n in quiet.stderr + quiet.stdout for n in noise), quiet.stderr
    loud = train("--verbose")
    assert loud.returncode == 0, loud.stderr
    assert any(n in loud.stderr for n in noise), loud.stderr

"""abc2midi, abcm2ps and fluidsynth through abcweb.sound.abctools, with the real tools.

Tools are only simulated missing (PATH pointed at an empty folder, a soundfont path that does
not exist); hangs are real tools given too little time.
"""

import argparse
import io
import os
import re
import shutil
import subprocess
import sys
import tempfile
import wave
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from abcweb.music.tunes import split_tunes
from abcweb.sound import abccheck, abctools, tooling
from abcweb.sound import audio as audio_module
from abcweb.sound.abctools import (
    ToolError,
    ToolMissing,
    ToolTimeout,
    check,
    to_audio,
    to_midi,
    to_svg,
)

ROOT = Path(__file__).resolve().parents[1]
IRISH = ROOT / ".." / "shared" / "data" / "irish.abc"


def needs(*tools):
    missing = [t for t in tools if shutil.which(t) is None]
    return pytest.mark.skipif(bool(missing), reason=f"not installed: {', '.join(missing)}")


def has_soundfont():
    try:
        abctools.find_soundfont()
        return True
    except ToolMissing:
        return False


audio = pytest.mark.skipif(
    shutil.which("fluidsynth") is None or shutil.which("abc2midi") is None or not has_soundfont(),
    reason="fluidsynth, abc2midi or a soundfont missing",
)


def tune_of(notes: str, bars: int = 4, header: str = "") -> str:
    return (
        f"X:1\nT:Test\nM:4/4\nL:1/4\nQ:1/4=120\n{header}K:C\n" + "|".join([notes] * bars) + "|]\n"
    )


# 16 bars of a reel, no repeats: about 32 s at a quarter note of 120.
REEL_30S = """X:1
T:Thirty seconds
M:C|
L:1/8
Q:1/4=120
K:G
GF|DGGB d2GB|d2GF Gc (3AGF|DGGB d2GB|dBcA F2GF|DGGB d2GF|DGGF G2Ge|fgaf gbag|fdcA G2GA|
B2BG c2cA|d2GF G2GA|B2BG c2cA|d2DE F2GA|B2BG c2cA|d^cde f2 (3def|g2gf gbag|fdcA G2|]
"""


@pytest.fixture(autouse=True)
def fresh_cache():
    abctools.clear_cache()
    yield
    abctools.clear_cache()


@pytest.fixture
def private_tmp(tmp_path, monkeypatch):
    """Point tempfile at an empty folder, to see that every call cleans up after itself."""
    where = tmp_path / "tmp"
    where.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(where))
    return where


def wav_samples(data: bytes) -> tuple[np.ndarray, int]:
    with wave.open(io.BytesIO(data)) as w:
        assert w.getsampwidth() == 2
        frames = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").reshape(
            -1, w.getnchannels()
        )
        return frames.astype(np.float64) / 32768, w.getframerate()


def dominant_hz(samples: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    freqs = np.fft.rfftfreq(len(samples), 1 / rate)
    spectrum[freqs < 50] = 0
    return float(freqs[np.argmax(spectrum)])


# --- audio -------------------------------------------------------------------------------


@audio
@pytest.mark.parametrize("note, hz", [("A", 440.0), ("e", 659.26)])
def test_known_notes_render_to_their_pitch(note, hz, private_tmp):
    data = to_audio(tune_of(f"{note}4", bars=3), "wav")
    frames, rate = wav_samples(data)
    assert rate == abctools.SAMPLE_RATE and frames.shape[1] == 1  # one melody: mono
    assert 6.0 < len(frames) / rate < 8.0  # 3 bars of 4 beats at 120 bpm = 6 s, plus the release
    peak = np.max(np.abs(frames))
    samples = frames.mean(axis=1)
    assert 0.8 < peak <= 10 ** (audio_module.PEAK_DBFS / 20) + 1e-3  # loud: normalised to -1 dBFS
    assert np.sqrt(np.mean(samples**2)) > 0.02  # not silent
    assert dominant_hz(samples, rate) == pytest.approx(hz, rel=0.01)
    assert list(private_tmp.iterdir()) == []


@audio
def test_rests_render_silence_of_their_length():
    frames, rate = wav_samples(to_audio("X:1\nL:1/4\nQ:1/4=120\nK:C\nz4|z4|]\n", "wav"))
    assert len(frames) / rate >= 4.0 and not frames.any()


@audio
def test_web_audio_is_small_cached_and_playable_everywhere():
    assert abctools.WEB_FORMAT in ("mp3", "flac", "wav")
    assert abctools.WEB_MIME == abctools.MIME[abctools.WEB_FORMAT]
    data = to_audio(REEL_30S)
    seconds = len(to_audio(REEL_30S, "wav")) / 2 / abctools.SAMPLE_RATE  # mono, 16-bit
    assert 25 < seconds < 40
    if abctools.WEB_FORMAT == "mp3":
        assert data[:3] == b"ID3" or data[:2] in (b"\xff\xfb", b"\xff\xf3", b"\xff\xf2")
        assert len(data) < 300_000
    # Cached by content: replaying is the same object, no tool runs (render time and size per
    # 30 s of music: bench/bench_render.py).
    assert to_audio(REEL_30S) is data


@audio
@pytest.mark.parametrize(
    "fmt, magic", [("wav", b"RIFF"), ("flac", b"fLaC"), ("oga", b"OggS"), ("ogg", b"OggS")]
)
def test_formats(fmt, magic):
    if fmt != "wav" and not audio_module.can_encode({"ogg": "oga"}.get(fmt, fmt)):
        pytest.skip(f"this libsndfile cannot write {fmt}")
    assert to_audio(tune_of("CDEF"), fmt)[:4] == magic


@audio
def test_renders_are_deterministic():
    first = {fmt: to_audio(tune_of("cBAG"), fmt) for fmt in ("wav", abctools.WEB_FORMAT)}
    abctools.clear_cache()
    second = {fmt: to_audio(tune_of("cBAG"), fmt) for fmt in ("wav", abctools.WEB_FORMAT)}
    assert first == second


@audio
def test_soundfont_choice(monkeypatch, tmp_path):
    monkeypatch.delenv(abctools.SOUNDFONT_ENV, raising=False)
    default = abctools.find_soundfont()
    assert default.is_file() and default.suffix in (".sf2", ".sf3")
    with pytest.raises(
        ToolMissing, match=r"soundfont not found: .*nope\.sf2.*apt-get install fluid-soundfont-gm"
    ):
        to_audio(tune_of("CDEF"), "wav", soundfont=str(tmp_path / "nope.sf2"))
    monkeypatch.setenv(abctools.SOUNDFONT_ENV, str(tmp_path / "nope.sf2"))
    with pytest.raises(ToolMissing, match=abctools.SOUNDFONT_ENV):
        abctools.find_soundfont()
    monkeypatch.setenv(abctools.SOUNDFONT_ENV, str(default))
    assert abctools.find_soundfont() == default
    assert abctools.find_soundfont(str(default)) == default
    tim = Path("/usr/share/sounds/sf2/TimGM6mb.sf2")
    if tim.is_file():  # another font renders too, and differently
        assert to_audio(tune_of("CDEF"), "wav", soundfont=str(tim)) != to_audio(
            tune_of("CDEF"), "wav"
        )


@audio
def test_timeouts_stop_the_tools(private_tmp):
    midi = to_midi(REEL_30S)  # abc2midi done and cached: only fluidsynth runs below
    assert midi.startswith(b"MThd")
    with pytest.raises(ToolTimeout, match=r"fluidsynth took longer than 0.01 s"):
        to_audio(REEL_30S, "wav", timeout=0.01)
    abctools.clear_cache()
    with pytest.raises(ToolTimeout, match="abc2midi took longer"):
        to_midi(REEL_30S, timeout=0.0001)
    assert list(private_tmp.iterdir()) == []


@audio
def test_endless_audio_is_capped(monkeypatch, private_tmp):
    monkeypatch.setattr(audio_module, "MAX_AUDIO_SECONDS", 3)
    with pytest.raises(ToolError, match="plays longer than 3 s"):
        to_audio(tune_of("CDEF", bars=8), "wav")
    assert list(private_tmp.iterdir()) == []


def test_output_cap_holds_for_a_tool_that_writes_and_exits_between_polls(tmp_path):
    # A fast machine renders a short tune in less than one poll interval: the cap must not
    # depend on catching the tool while it runs.
    writer = [sys.executable, "-c", "open('big', 'wb').write(bytes(4096))"]
    with pytest.raises(ToolError, match="grew past"):
        tooling.run_tool(writer, str(tmp_path), timeout=30, max_files=1024)
    roomy = tmp_path / "roomy"
    roomy.mkdir()
    rc, _, _, _ = tooling.run_tool(writer, str(roomy), timeout=30, max_files=65536)
    assert rc == 0 and (roomy / "big").stat().st_size == 4096


def test_missing_encoders_are_reported_and_wav_still_works(monkeypatch):
    monkeypatch.setattr(audio_module, "_MAJORS", set())
    monkeypatch.setattr(audio_module, "_lame", None)
    with pytest.raises(ToolMissing, match="libsndfile.*apt-get install libsndfile1"):
        audio_module.encode(np.zeros(10, np.int16), "flac")
    with pytest.raises(ToolMissing, match="LAME.*apt-get install libmp3lame0"):
        audio_module.encode(np.zeros(10, np.int16), "mp3")
    assert audio_module.encode(np.zeros(10, np.int16), "wav")[:4] == b"RIFF"


def test_unknown_format():
    with pytest.raises(ToolError, match="unknown audio format 'aac'"):
        to_audio(tune_of("CDEF"), "aac")


# --- check -------------------------------------------------------------------------------

PLANTED = """X:1
T:Planted error
M:6/8
L:1/8
K:D
DFA dAF|DFA d2e|
fed "H7"cBA|dAF D3|]
"""


@needs("abc2midi")
def test_planted_error_is_reported_at_its_line(private_tmp):
    result = check(PLANTED)
    assert not result.valid
    (error,) = result.errors
    assert error.line == 7 and "Guitar chord" in error.message and error.bar == 3
    assert not error.bar_length
    # the same tune without X: (added for abc2midi) keeps the caller's line numbers
    assert check(PLANTED.split("\n", 1)[1]).errors[0].line == 6
    assert check(PLANTED.replace('"H7"', '"A7"')).valid
    assert list(private_tmp.iterdir()) == []


@needs("abc2midi")
def test_bar_lengths():
    # pickup GA, 4 bars of 4/4 with bar 3 one eighth short and bar 4 one eighth long, last bar short
    tune = "X:1\nM:4/4\nL:1/8\nK:G\nGA|B2BG c2cA|d2GF G2G|B2BG c2cA d|\nd2DE F2GA|B2BG c2cA|d2\n"
    result = check(tune)
    assert result.valid  # bar lengths are warnings, not errors
    assert result.bars == 7 and result.bad_bars == 2
    assert [(p.line, p.bar) for p in result.bar_problems] == [(5, 3), (5, 4)]
    assert all(p.level == "warning" and "time units" in p.message for p in result.bar_problems)
    assert result.bar_problems == [p for p in result.warnings if p.bar_length]
    # a pickup and a last bar that completes it are not bar problems
    good = "X:1\nM:6/8\nL:1/8\nK:D\nA|dAF dAF|dAF d2:|\n"
    assert check(good).bad_bars == 0 and check(good).bars == 3


@needs("abc2midi")
def test_included_files_never_reach_the_tools(tmp_path):
    secret = tmp_path / "secret.abc"
    secret.write_text("this-is-a-secret-line\n")
    tune = (
        f"X:1\n%%abc-include {secret}\nI:abc-include {secret}\n"
        f"T:x [I:abc-include {secret}]\nK:C\nCDEF|]\n"
    )
    result = check(tune)
    assert not any("secret" in p.message for p in result.problems)
    assert b"secret" not in to_midi(tune)


@needs("abc2midi", "abcm2ps")
def test_huge_input_is_refused():
    tune = "X:1\nK:C\n" + "CDEF|" * 30_000
    for fn in (check, to_midi, to_svg):
        with pytest.raises(ToolError, match=r"ABC too long: \d+ characters, at most 100000"):
            fn(tune)


@needs("abc2midi")
def test_junk_is_invalid_not_an_exception():
    assert not check("").valid
    assert not check("just words\n").valid
    with pytest.raises(ToolError, match="abc2midi wrote no MIDI"):
        to_midi("just words\n")
    flood = check("X:1\nM:C\nK:C\n" + '"x"C' * 300 + "\n")  # 300 bad chord symbols
    assert len(flood.problems) == abccheck.MAX_PROBLEMS + 1
    assert flood.problems[-1].message == "... and 100 more problems"


@needs("abc2midi")
@pytest.mark.slow
def test_irish_tunes_mostly_valid():
    if not IRISH.is_file():
        pytest.skip(f"data set not found at {IRISH}")
    pieces = [p for p in IRISH.read_text().split("\n\n") if p.strip()]
    results = [check(p) for p in pieces]
    valid = [r for r in results if r.valid]
    assert len(valid) / len(results) == pytest.approx(0.925, abs=0.01)  # 746 of 806 here
    bars, bad = sum(r.bars for r in valid), sum(r.bad_bars for r in valid)
    assert bars > 10_000 and 1 - bad / bars > 0.99


# --- sheet music -------------------------------------------------------------------------


@needs("abcm2ps")
def test_svg(private_tmp):
    svg = to_svg(PLANTED)
    assert svg.startswith("<svg") and svg.rstrip().endswith("</svg>") and svg.count("<svg") == 1
    assert "Planted error" in svg and "<!--" not in svg  # comments hold dates: dropped
    abctools.clear_cache()
    assert to_svg(PLANTED) == svg
    assert to_svg(PLANTED + "\nX:2\nK:C\nCDEF|]\n").count("<svg") == 1  # the first tune only
    evil = (
        "X:1\nT:--><script>alert(1)</script>\n"
        "%%beginsvg\n<script>alert(2)</script>\n%%endsvg\nK:C\nCDEF|]\n"
    )
    assert "<script" not in to_svg(evil)
    assert list(private_tmp.iterdir()) == []


# --- missing tools -----------------------------------------------------------------------


def test_missing_tools_say_how_to_install(monkeypatch, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    with pytest.raises(ToolMissing, match=r"abc2midi is not installed: apt-get install abcmidi"):
        check(PLANTED)
    with pytest.raises(ToolMissing, match="abc2midi"):
        to_midi(PLANTED)
    with pytest.raises(ToolMissing, match=r"abcm2ps is not installed: apt-get install abcm2ps"):
        to_svg(PLANTED)
    if has_soundfont():
        with pytest.raises(
            ToolMissing, match=r"fluidsynth is not installed: apt-get install fluidsynth"
        ):
            to_audio(PLANTED)
    status = abctools.tool_status()
    assert status["abc2midi"] is None and status["abcm2ps"] is None and status["fluidsynth"] is None
    assert split_tunes(PLANTED)[0].complete  # what needs no tool still works


@needs("abc2midi")
def test_tool_status_when_installed():
    status = abctools.tool_status()
    assert set(status) >= {"abc2midi", "abcm2ps", "fluidsynth", "soundfont", "libsndfile"}
    # Versions, never paths: a page shows this to visitors.
    assert re.fullmatch(r"\d+(\.\d+)+", status["abc2midi"]), status
    assert not any("/" in v for v in status.values() if v), status


# --- threads -----------------------------------------------------------------------------


@audio
def test_concurrent_calls_agree_with_serial_ones():
    tunes = [tune_of(n) for n in ("CDEF", "GABc", "cdef", "EDCB")]
    serial = [
        (check(t), to_audio(t, "wav"), to_svg(t) if shutil.which("abcm2ps") else "") for t in tunes
    ]
    abctools.clear_cache()
    with ThreadPoolExecutor(4) as pool:
        parallel = list(
            pool.map(
                lambda t: (
                    check(t),
                    to_audio(t, "wav"),
                    to_svg(t) if shutil.which("abcm2ps") else "",
                ),
                tunes * 2,
            )
        )
    assert parallel == serial * 2


# --- CLI ---------------------------------------------------------------------------------


def render(*argv) -> int:
    parser = argparse.ArgumentParser(prog="abcweb")
    abctools.add_render_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["render", *argv])
    return args.func(args)


@audio
@needs("abcm2ps")
@pytest.mark.parametrize(
    "suffix, magic",
    [
        (".mid", b"MThd"),
        (".wav", b"RIFF"),
        (".flac", b"fLaC"),
        (".oga", b"OggS"),
        (".ogg", b"OggS"),
        (".svg", b"<svg"),
        (".mp3", b""),
    ],
)
def test_cli_render(suffix, magic, tmp_path, capsys):
    if suffix == ".mp3" and not audio_module.can_encode("mp3"):
        pytest.skip("this libsndfile cannot write mp3")
    src = tmp_path / "tune.abc"
    src.write_text("%%a file header\n\n" + tune_of("CDEF"))
    out = tmp_path / f"out{suffix}"
    assert render(str(src), "--out", str(out)) == 0
    assert out.read_bytes().startswith(magic) and out.stat().st_size > 40
    assert capsys.readouterr().err == ""


@needs("abc2midi")
def test_cli_reads_stdin_and_picks_a_tune(tmp_path, monkeypatch):
    text = tune_of("CDEF") + "\n" + tune_of("GABc").replace("T:Test", "T:Second")
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(text.encode())))
    assert render("-", "--out", str(tmp_path / "a.mid"), "--index", "2") == 0
    assert (tmp_path / "a.mid").read_bytes() == to_midi(split_tunes(text)[1].text)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["{tmp}/missing.abc", "--out", "{tmp}/x.mid"], "cannot read .*missing.abc"),
        (["{tmp}/words.abc", "--out", "{tmp}/x.mid"], "no ABC tune found"),
        (["{tmp}/tune.abc", "--out", "{tmp}/x.aac"], "cannot tell the format from 'x.aac'"),
        (["{tmp}/tune.abc", "--out", "{tmp}/x.mid", "--index", "3"], "holds 1 tunes: no tune 3"),
        (["{tmp}/tune.abc", "--out", "{tmp}/nodir/x.mid"], "cannot write"),
    ],
)
@needs("abc2midi")
def test_cli_errors_are_one_line(argv, message, tmp_path, capsys):
    (tmp_path / "words.abc").write_text("no music here\n")
    (tmp_path / "tune.abc").write_text(tune_of("CDEF"))
    assert render(*[a.format(tmp=tmp_path) for a in argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("abcweb render: error: ")
    assert re.search(message, err)


def test_cli_missing_tool_in_a_real_process(tmp_path):
    (tmp_path / "tune.abc").write_text(tune_of("CDEF"))
    env = {**os.environ, "PATH": str(tmp_path), "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-m", "abcweb", "render", "tune.abc", "--out", "x.mid"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert proc.stderr == (
        "abcweb render: error: abc2midi is not installed: "
        "apt-get install abcmidi (macOS: brew install abcmidi)\n"
    )


# --- properties --------------------------------------------------------------------------

ABCISH = st.text(
    alphabet=st.sampled_from(
        list("XTKLMQV:|[]()\"!%^_=,'/<>0123456789 \n\tABCDEFGabcdefgzx-{}~+&é\x00")
    ),
    max_size=300,
)
HEADERED = st.builds(lambda body: "X:1\nK:C\n" + body, ABCISH)


@needs("abc2midi", "abcm2ps")
@pytest.mark.slow
@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.one_of(ABCISH, HEADERED, st.text(max_size=200)))
def test_arbitrary_text_gives_results_or_tool_errors(text):
    try:
        result = check(text, timeout=5)
        lines = text.replace("\r\n", "\n").replace("\r", "\n").count("\n") + 1
        assert all(p.line is None or 1 <= p.line <= lines for p in result.problems)
        assert 0 <= result.bad_bars <= max(result.bars, len(result.bar_problems))
    except ToolError:
        pass
    for fn in (to_midi, to_svg):
        try:
            fn(text, timeout=5)
        except ToolError:
            pass


@audio
@pytest.mark.slow
@settings(max_examples=10, deadline=None)
@given(HEADERED)
def test_arbitrary_tunes_render_or_give_tool_errors(text):
    try:
        assert to_audio(text, "wav", timeout=10)[:4] == b"RIFF"
    except ToolError:
        pass


@audio
def test_a_tune_without_a_tempo_plays_at_a_session_tempo_for_its_meter():
    jig = "X:1\nT:j\nM:6/8\nL:1/8\nK:D\n" + "|DFA dAF" * 8 + "|\n"
    reel = "X:1\nT:r\nM:C|\nL:1/8\nK:D\n" + "|DEFG ABcd" * 8 + "|\n"

    def seconds(text):
        frames, rate = wav_samples(to_audio(text, "wav"))
        return len(frames) / rate

    # 8 bars of 6/8 at a dotted quarter of 112: 8.6 s; 8 bars of cut time at a half of 96: 10 s.
    assert 8.0 < seconds(jig) < 10.0
    assert 9.5 < seconds(reel) < 11.5
    # A tempo the tune gives is kept: 8 bars of 4 quarters at 120 are 16 s.
    assert 15.5 < seconds(reel.replace("K:D", "Q:1/4=120\nK:D")) < 17.5

"""Renders and checkpoints are whole or refused (issue 21, item 4).

A full disk, a per-file size limit or a tool that dies mid-write must never give a short MIDI
file, sheet music, audio or checkpoint, and nothing short is cached: the next render, once
there is room, is whole. Real abc2midi, abcm2ps and fluidsynth; the small disk is a real
tmpfs where this machine lets us mount one (root), and RLIMIT_FSIZE on the tools elsewhere.
"""

import functools
import io
import os
import resource
import shutil
import signal
import subprocess
import tempfile
import wave
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from abcweb.model import checkpoint
from abcweb.model.lstm import ModelConfig
from abcweb.sound import abctools, audio, tooling
from abcweb.sound.abctools import ToolError, to_audio, to_midi, to_svg
from abcweb.sound.notation import midi_seconds
from views import tuneview

from conftest import random_checkpoint

tools = pytest.mark.skipif(
    any(shutil.which(t) is None for t in ("abc2midi", "abcm2ps", "fluidsynth")),
    reason="abc2midi, abcm2ps or fluidsynth missing")

# 32 bars of four quarter notes at a quarter note of 120: 64 s of music, a MIDI file of 1.2 KB.
HEADER = "X:1\nT:Sixty-four seconds\nM:4/4\nL:1/4\nQ:1/4=120\nK:G\n"
BARS = "|".join(["GABc", "dBGB", "cABG", "FGAd"] * 8)
TUNE, TUNE_SECONDS = HEADER + BARS + "|]\n", 64
LONG_TUNE = HEADER + "|".join([BARS] * 4) + "|]\n"  # 256 s, a MIDI file of 4.6 KB
# A low tubular bell rings 4 s above -60 dB after its note ends, past the end of the MIDI.
BELL = "X:1\nT:Ringing\nM:4/4\nL:1/4\nQ:1/4=120\nK:C\n%%MIDI program 14\ncdef|C,4|]\n"
RAW_BYTES_PER_SECOND = audio.SAMPLE_RATE * 2 * 4  # fluidsynth's stereo float samples


@pytest.fixture(autouse=True)
def fresh_cache():
    abctools.clear_cache()
    yield
    abctools.clear_cache()


def cached() -> list:
    """What the render caches hold, by kind (midi, svg, audio, pcm, check)."""
    return sorted(k[0] for c in (tooling.cache, audio.pcm_cache) for k in c.items)


def wav_seconds(data: bytes) -> float:
    with wave.open(io.BytesIO(data)) as w:
        return w.getnframes() / w.getframerate()


class SmallDisk:
    """A mounted tmpfs that the tools' temporary folders go to, filled to leave a given room."""

    def __init__(self, path):
        self.path, self.filler = path, path / ".filler"

    def leave(self, room: int) -> None:
        self.filler.unlink(missing_ok=True)
        with open(self.filler, "wb") as f:
            try:
                f.write(bytes(64 << 20))  # to the brim
            except OSError:
                pass
        os.truncate(self.filler, self.filler.stat().st_size - room)
        st = os.statvfs(self.path)
        assert st.f_bavail * st.f_frsize == room

    def make_room(self) -> None:
        self.filler.unlink()

    def others(self) -> list[str]:
        """Files left on the disk besides the filler (temporary files nobody removed)."""
        return sorted(p.name for p in self.path.iterdir() if p != self.filler)


@pytest.fixture
def small_disk(tmp_path, monkeypatch):
    where = tmp_path / "disk"
    where.mkdir()
    try:
        mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(where)],
                                 capture_output=True, text=True)
    except OSError as e:
        pytest.skip(f"cannot mount a tmpfs here: {e}")
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        monkeypatch.setattr(tempfile, "tempdir", str(where))
        yield SmallDisk(where)
    finally:
        subprocess.run(["umount", "-l", str(where)], capture_output=True)


def limit_tools(monkeypatch, size: int, killed: bool) -> None:
    """Every tool started from here on may write files of at most `size` bytes. By default
    the kernel then kills it (SIGXFSZ); with `killed` False it ignores the signal and the
    write fails with EFBIG, which the tools, like a full disk, do not all notice."""

    def limit():
        resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))
        if not killed:
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)

    monkeypatch.setattr(subprocess, "Popen", functools.partial(subprocess.Popen,
                                                               preexec_fn=limit))


# == the MIDI reader that says how long audio must be =========================================
@tools
def test_midi_length_follows_the_tempo_map_and_no_cut_file_passes():
    midi = to_midi(TUNE)
    assert midi_seconds(midi) == pytest.approx(TUNE_SECONDS, abs=0.1)
    two_tempi = TUNE.replace("|FGAd|GABc", "|FGAd|[Q:1/4=60]GABc", 1)  # after 4 bars
    assert midi_seconds(to_midi(two_tempi)) == pytest.approx(4 * 2 + 28 * 4, abs=0.1)
    for size in range(len(midi)):
        with pytest.raises(ToolError, match="incomplete MIDI file"):
            midi_seconds(midi[:size])


# == audio ====================================================================================
@tools
@pytest.mark.slow
def test_audio_on_a_full_disk_is_refused_never_cached_and_whole_once_there_is_room(small_disk):
    midi = to_midi(TUNE)  # with room: the MIDI is whole (and cached); only fluidsynth is short
    small_disk.leave(2 << 20)  # about 16 s of fluidsynth's raw samples
    with pytest.raises(ToolError, match=r"fluidsynth wrote 1\d\.\d s of a 64\.0 s tune"):
        to_audio(TUNE)
    assert cached() == ["midi"] and small_disk.others() == []
    with ThreadPoolExecutor(1) as pool:  # as the page renders it: one line, no audio
        played, message = tuneview.result(pool.submit(to_audio, TUNE))
    assert played is None and message.startswith("fluidsynth wrote") and "\n" not in message
    assert cached() == ["midi"]
    small_disk.make_room()
    assert wav_seconds(to_audio(TUNE, "wav")) >= midi_seconds(midi)
    assert len(to_audio(TUNE)) > 200_000  # the page's MP3, whole: 255 KB
    assert small_disk.others() == []


@tools
@pytest.mark.slow
def test_audio_cut_while_its_last_notes_ring_is_refused(small_disk):
    """The disk fills after the MIDI's end, while the bell still rings; fluidsynth cannot
    even write its error message there. The render's length alone would pass."""
    seconds = midi_seconds(to_midi(BELL))
    whole = audio.render_pcm(to_midi(BELL), audio.find_soundfont(), 20)
    assert whole.size > (seconds + 3) * audio.SAMPLE_RATE  # the ring this test cuts
    abctools.clear_cache()
    to_midi(BELL)
    small_disk.leave(4096 + int((seconds + 1.5) * RAW_BYTES_PER_SECOND) // 4096 * 4096)
    with pytest.raises(ToolError, match=r"stops at 5\.\d s while still sounding"):
        to_audio(BELL, "wav")
    assert cached() == ["midi"] and small_disk.others() == []
    small_disk.make_room()
    assert wav_seconds(to_audio(BELL, "wav")) == pytest.approx(whole.size / audio.SAMPLE_RATE)


@tools
@pytest.mark.parametrize("killed", [True, False], ids=["killed", "write-fails"])
def test_audio_past_a_file_size_limit_is_refused_and_never_cached(monkeypatch, killed):
    midi = to_midi(TUNE)
    with monkeypatch.context() as m:
        limit_tools(m, 1 << 20, killed)
        message = ("fluidsynth rendered no audio" if killed
                   else r"fluidsynth wrote \d\.\d s of a 64\.0 s tune: .*File too large")
        with pytest.raises(ToolError, match=message):
            to_audio(TUNE, "wav")
        assert cached() == ["midi"]
    assert wav_seconds(to_audio(TUNE, "wav")) >= midi_seconds(midi)


@pytest.mark.skipif(not audio.can_encode("oga"), reason="libsndfile without Ogg Vorbis")
@pytest.mark.slow
def test_an_encoding_the_disk_cut_at_its_close_is_refused(small_disk):
    """libsndfile writes an Ogg file's last pages when it closes it, and does not say when
    they are lost: with this noise, a file 2% short (the room of its last page) came back as
    whole until the encoder decoded it back."""
    pcm = (np.random.default_rng(0).standard_normal(30 * audio.SAMPLE_RATE) * 3000).astype(
        np.int16)
    size = len(audio.encode(pcm, "oga"))
    rooms = range(size // 4096 * 4096 - 7 * 4096, size, 4096)
    for room in rooms:
        small_disk.leave(room)
        with pytest.raises(ToolError, match=r"libsndfile wrote \d+ of 480000 frames of oga"):
            audio.encode(pcm, "oga")
    assert len(rooms) == 8 and small_disk.others() == []
    small_disk.make_room()
    assert len(audio.encode(pcm, "oga")) == size


# == MIDI =====================================================================================
@tools
@pytest.mark.parametrize("killed", [True, False], ids=["killed", "write-fails"])
def test_midi_past_a_file_size_limit_is_refused_and_never_cached(monkeypatch, killed):
    with monkeypatch.context() as m:
        limit_tools(m, 500, killed)  # the MIDI file is 1.2 KB
        message = (r"abc2midi crashed \(signal 25\)" if killed
                   else "abc2midi could not finish the MIDI file: MIDI read/write error")
        for render in (to_midi, to_audio):
            with pytest.raises(ToolError, match=message):
                render(TUNE)
        assert cached() == []
    assert midi_seconds(to_midi(TUNE)) == pytest.approx(TUNE_SECONDS, abs=0.1)


@tools
@pytest.mark.slow
def test_midi_on_a_full_disk_is_refused_never_cached_and_whole_once_there_is_room(small_disk):
    whole = to_midi(LONG_TUNE)
    assert len(whole) > 4096 and midi_seconds(whole) == pytest.approx(4 * TUNE_SECONDS, abs=0.2)
    abctools.clear_cache()
    small_disk.leave(2 * 4096)  # a page for tune.abc, one for the MIDI file
    with pytest.raises(ToolError, match="abc2midi could not finish the MIDI file|incomplete "
                                        "MIDI file"):
        to_midi(LONG_TUNE)
    small_disk.leave(0)
    with pytest.raises(ToolError, match="cannot write temporary files: No space left"):
        to_midi(LONG_TUNE)
    assert cached() == [] and small_disk.others() == []
    small_disk.make_room()
    assert to_midi(LONG_TUNE) == whole


# == sheet music ==============================================================================
@tools
@pytest.mark.slow
def test_sheet_music_on_a_full_disk_is_refused_and_whole_once_there_is_room(small_disk):
    small_disk.leave(0)
    with pytest.raises(ToolError, match="cannot write temporary files: No space left"):
        to_svg(TUNE)
    assert cached() == [] and small_disk.others() == []
    small_disk.make_room()
    assert to_svg(TUNE).rstrip().endswith("</svg>")


@tools
@pytest.mark.parametrize("ending, message", [
    ('| head -c 6000', "abcm2ps wrote no sheet music"),  # cut short, exit code 0
    ('; kill -9 $$', r"abcm2ps crashed \(signal 9\)"),  # killed after printing it all
])
def test_sheet_music_from_a_failing_abcm2ps_is_refused_and_never_cached(tmp_path, monkeypatch,
                                                                        ending, message):
    whole = to_svg(TUNE)
    assert len(whole) > 6000
    abctools.clear_cache()
    folder = tmp_path / "bin"
    folder.mkdir()
    wrapper = folder / "abcm2ps"
    wrapper.write_text(f'#!/bin/sh\n"{shutil.which("abcm2ps")}" "$@" {ending}\n')
    wrapper.chmod(0o755)
    with monkeypatch.context() as m:
        m.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")
        with pytest.raises(ToolError, match=message):
            to_svg(TUNE)
    assert cached() == []
    assert to_svg(TUNE) == whole


# == checkpoints ==============================================================================
def _saved_files(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def _same_weights(a: checkpoint.Checkpoint, b: checkpoint.Checkpoint) -> bool:
    return all(np.array_equal(a.weights[n], b.weights[n]) for n in a.weights)


SMALL, LARGE = ModelConfig(embedding=8, units=16, layers=1), ModelConfig(embedding=64,
                                                                          units=512, layers=2)


@pytest.mark.slow
def test_a_checkpoint_save_on_a_full_disk_leaves_the_old_one_whole(small_disk):
    folder = small_disk.path / "model"
    old = random_checkpoint(SMALL, seed=1)
    checkpoint.save(old, folder)
    before = _saved_files(folder)
    new = random_checkpoint(LARGE, seed=2)  # about 12 MB of weights: more than the disk
    with pytest.raises(OSError, match="No space left"):
        checkpoint.save(new, folder)
    assert _saved_files(folder) == before  # no short weights file, no temporary file
    assert _same_weights(checkpoint.load(folder), old)
    smaller = random_checkpoint(SMALL, seed=3)  # what fits is saved, whole
    checkpoint.save(smaller, folder)
    assert _same_weights(checkpoint.load(folder), smaller)


def test_a_checkpoint_save_past_a_file_size_limit_leaves_the_old_one_whole(tmp_path):
    """Python ignores SIGXFSZ, so here the write itself fails (EFBIG), as on a full disk."""
    assert signal.getsignal(signal.SIGXFSZ) == signal.SIG_IGN
    folder = tmp_path / "model"
    old = random_checkpoint(SMALL, seed=1)
    checkpoint.save(old, folder)
    before = _saved_files(folder)
    new = random_checkpoint(LARGE, seed=2)
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, hard))
    try:
        with pytest.raises(OSError, match="File too large"):
            checkpoint.save(new, folder)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    assert _saved_files(folder) == before
    assert _same_weights(checkpoint.load(folder), old)
    checkpoint.save(new, folder)
    assert _same_weights(checkpoint.load(folder), new)

"""A tune as audio: fluidsynth renders its MIDI with a General MIDI soundfont, the samples
are peak-normalised (fluidsynth's default gain peaks near -25 dBFS) and encoded.

The web format is MP3 (mono, VBR; every major browser plays it, Safari included), encoded by
LAME itself. libsndfile (which wraps the same LAME) takes 2.6 times the CPU for the same
tune, because it leaves LAME's algorithm at its slow, careful default; a page server pays
that for every new tune. FLAC and Ogg Vorbis, for downloads, go through libsndfile; WAV
through the standard library. Both libraries are reached with ctypes: fluidsynth and
libsndfile already bring them, so no new package.

Everything is mono: the tunes are one melody, and it halves every stage after fluidsynth.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import io
import os
import wave
from pathlib import Path

import numpy as np

from abcweb.sound.notation import midi_seconds, to_midi
from abcweb.sound.tooling import (
    INSTALL,
    SOUNDFONT_ENV,
    Cache,
    ToolError,
    ToolMissing,
    cache,
    find_tool,
    run_tool,
    workdir,
)

# -----------------------------------------------------------------------------
# settings
MAX_AUDIO_SECONDS = 300  # longer renders are stopped (a slow Q: can ask for hours)
# 16 kHz: a fiddle's or whistle's melody and its first harmonics lie below its 8 kHz limit.
# Against 22.05 kHz it saves 0.028 CPU-s a tune (fluidsynth 0.119 -> 0.102, LAME 0.045 ->
# 0.033) and a quarter of the MP3 (175 -> 131 KB per 30 s), which the server's budget of 0.4
# CPU-s a tune needed once every tune is the best of 8 drafts.
SAMPLE_RATE = 16000
# Chorus and reverb off: together 30% of fluidsynth's time (0.100 -> 0.069 s per 30 s of
# music here); a solo instrument is clear without them.
FLUIDSYNTH_EFFECTS = ["-C", "0", "-R", "0"]
PEAK_DBFS = -1.0  # normalise to this peak
MP3_VBR_QUALITY = 5.0  # LAME -V5 (0 best .. 9 smallest): about 48 kbit/s for a tune, mono
MP3_ALGORITHM_QUALITY = 7  # LAME -q7 ("fast"): 0.040 s per 30 s here against 0.070 at -q5
OGG_QUALITY = 0.6  # libsndfile compression level for Vorbis (0 best .. 1)
# Decoded audio, only reused to encode one tune in another format (a download): a few tunes
# (about 1.5 MB each). A miss re-renders in about 0.2 s; under load a larger cache only
# added to the server's memory (bench/visitors.py).
PCM_CACHE_BYTES = 8 << 20
# FluidR3_GM sounds best; with dynamic sample loading fluidsynth reads only the instruments a
# tune uses, so it renders as fast as the 6 MB TimGM6mb. Debian paths first, then others.
SOUNDFONTS = [
    "/usr/share/sounds/sf2/FluidR3_GM.sf2",
    "/usr/share/sounds/sf2/TimGM6mb.sf2",
    "/usr/share/sounds/sf2/default-GM.sf2",
    "/usr/share/sounds/sf3/default-GM.sf3",
    "/usr/share/soundfonts/FluidR3_GM.sf2",  # Arch, Fedora
    "/usr/share/soundfonts/default.sf2",
    "/usr/local/share/soundfonts/default.sf2",
    "/opt/homebrew/share/soundfonts/default.sf2",
]
AUDIO_FORMATS = ("wav", "flac", "oga", "mp3")
MIME = {"wav": "audio/wav", "flac": "audio/flac", "oga": "audio/ogg", "mp3": "audio/mpeg"}

pcm_cache = Cache(PCM_CACHE_BYTES)


def find_soundfont(explicit: str | None = None) -> Path:
    """The soundfont to render with: `explicit`, else $ABCWEB_SOUNDFONT, else the first of
    SOUNDFONTS that exists. A named font that does not exist is an error, not skipped."""
    for name, where in (
        (explicit, "given"),
        (os.environ.get(SOUNDFONT_ENV), f"from ${SOUNDFONT_ENV}"),
    ):
        if name:
            path = Path(name).expanduser()
            if not path.is_file():
                raise ToolMissing(f"soundfont not found: {name} ({where}): {INSTALL['soundfont']}")
            return path.resolve()
    for name in SOUNDFONTS:
        if os.path.isfile(name):
            return Path(name).resolve()
    raise ToolMissing(f"no General MIDI soundfont found: {INSTALL['soundfont']}")


# -----------------------------------------------------------------------------
# LAME (MP3)


def _load_lame():
    name = ctypes.util.find_library("mp3lame")
    try:
        lib = ctypes.CDLL(name or "libmp3lame.so.0")
    except OSError:
        return None
    p, i, f = ctypes.c_void_p, ctypes.c_int, ctypes.c_float
    lib.lame_init.restype = p
    lib.lame_init.argtypes = []
    for fn in ("lame_set_num_channels", "lame_set_in_samplerate", "lame_set_out_samplerate",
               "lame_set_mode", "lame_set_quality", "lame_set_VBR"):
        getattr(lib, fn).argtypes = [p, i]
    lib.lame_set_VBR_quality.argtypes = [p, f]
    lib.lame_init_params.argtypes = [p]
    lib.lame_close.argtypes = [p]
    lib.lame_encode_buffer.argtypes = [p, p, p, i, p, i]
    lib.lame_encode_flush.argtypes = [p, p, i]
    lib.get_lame_version.restype = ctypes.c_char_p
    return lib


_lame = _load_lame()
_MONO, _VBR_DEFAULT = 3, 4  # lame.h: MPEG_mode MONO, vbr_mode vbr_default (vbr_mtrh)


def _mp3(pcm: np.ndarray) -> bytes:
    if _lame is None:
        raise ToolMissing(f"LAME is needed for MP3: {INSTALL['lame']}")
    lame = _lame.lame_init()
    if not lame:
        raise ToolError("LAME could not start")
    try:
        for fn, value in (("lame_set_num_channels", 1), ("lame_set_in_samplerate", SAMPLE_RATE),
                          ("lame_set_out_samplerate", SAMPLE_RATE), ("lame_set_mode", _MONO),
                          ("lame_set_quality", MP3_ALGORITHM_QUALITY),
                          ("lame_set_VBR", _VBR_DEFAULT)):
            getattr(_lame, fn)(lame, value)
        _lame.lame_set_VBR_quality(lame, MP3_VBR_QUALITY)
        if _lame.lame_init_params(lame) < 0:
            raise ToolError("LAME refused its settings")
        pcm = np.ascontiguousarray(pcm, dtype=np.int16)
        size = int(1.25 * len(pcm)) + 7200  # lame.h's worst case for one call
        out = ctypes.create_string_buffer(size)
        n = _lame.lame_encode_buffer(lame, pcm.ctypes.data, pcm.ctypes.data, len(pcm), out,
                                     size)
        if n < 0:
            raise ToolError(f"LAME failed to encode (error {n})")
        data = out.raw[:n]
        n = _lame.lame_encode_flush(lame, out, size)
        if n < 0:
            raise ToolError(f"LAME failed to finish (error {n})")
        return data + out.raw[:n]
    finally:
        _lame.lame_close(lame)


# -----------------------------------------------------------------------------
# libsndfile (FLAC, Ogg Vorbis)


class _SFInfo(ctypes.Structure):
    _fields_ = [
        ("frames", ctypes.c_int64),
        ("samplerate", ctypes.c_int),
        ("channels", ctypes.c_int),
        ("format", ctypes.c_int),
        ("sections", ctypes.c_int),
        ("seekable", ctypes.c_int),
    ]


class _SFFormatInfo(ctypes.Structure):
    _fields_ = [("format", ctypes.c_int), ("name", ctypes.c_char_p), ("extension", ctypes.c_char_p)]


# libsndfile's constants (sndfile.h)
_SF_READ, _SF_WRITE = 0x10, 0x20
_SF_FORMATS = {"flac": 0x170000 | 0x0002, "oga": 0x200000 | 0x0060}  # FLAC PCM 16, OGG Vorbis
_SFC_SET_COMPRESSION_LEVEL = 0x1301
_SFC_GET_FORMAT_MAJOR_COUNT = 0x1030
_SFC_GET_FORMAT_MAJOR = 0x1031


def _load_sndfile():
    name = ctypes.util.find_library("sndfile")
    if name is None:
        return None
    try:
        lib = ctypes.CDLL(name)
    except OSError:
        return None
    lib.sf_open.restype = ctypes.c_void_p
    lib.sf_open.argtypes = [ctypes.c_char_p, ctypes.c_int, ctypes.POINTER(_SFInfo)]
    lib.sf_strerror.restype = ctypes.c_char_p
    lib.sf_strerror.argtypes = [ctypes.c_void_p]
    lib.sf_command.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p, ctypes.c_int]
    lib.sf_writef_short.restype = ctypes.c_int64
    lib.sf_writef_short.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64]
    lib.sf_readf_short.restype = ctypes.c_int64
    lib.sf_readf_short.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64]
    lib.sf_close.argtypes = [ctypes.c_void_p]
    lib.sf_version_string.restype = ctypes.c_char_p
    return lib


_sndfile = _load_sndfile()


def _sndfile_majors() -> set[int]:
    """Major formats this libsndfile was built with."""
    if _sndfile is None:
        return set()
    count = ctypes.c_int(0)
    _sndfile.sf_command(
        None, _SFC_GET_FORMAT_MAJOR_COUNT, ctypes.byref(count), ctypes.sizeof(count)
    )
    majors = set()
    for i in range(count.value):
        info = _SFFormatInfo(i, None, None)
        _sndfile.sf_command(None, _SFC_GET_FORMAT_MAJOR, ctypes.byref(info), ctypes.sizeof(info))
        majors.add(info.format)
    return majors


_MAJORS = _sndfile_majors()


def can_encode(fmt: str) -> bool:
    if fmt == "mp3":
        return _lame is not None
    return fmt == "wav" or (fmt in _SF_FORMATS and _SF_FORMATS[fmt] & 0xFFF0000 in _MAJORS)


def _sndfile_encode(pcm: np.ndarray, fmt: str) -> bytes:
    if not can_encode(fmt):
        what = "libsndfile" if _sndfile is None else f"libsndfile with {fmt.upper()} support"
        raise ToolMissing(f"{what} is needed for {fmt}: {INSTALL['libsndfile']}")
    pcm = np.ascontiguousarray(pcm, dtype=np.int16)
    with workdir() as tmp:
        path = os.path.join(tmp, "audio." + fmt)
        info = _SFInfo(0, SAMPLE_RATE, 1, _SF_FORMATS[fmt], 0, 0)
        handle = _sndfile.sf_open(path.encode(), _SF_WRITE, ctypes.byref(info))
        if not handle:
            why = _sndfile.sf_strerror(None).decode(errors="replace")
            raise ToolError(f"libsndfile cannot write {fmt}: {why}")
        try:
            if fmt == "oga":
                value = ctypes.c_double(OGG_QUALITY)
                _sndfile.sf_command(handle, _SFC_SET_COMPRESSION_LEVEL, ctypes.byref(value),
                                    ctypes.sizeof(value))
            written = 0
            for i in range(0, len(pcm), 65536):  # the Vorbis encoder crashes on one huge write
                block = pcm[i : i + 65536]
                written += _sndfile.sf_writef_short(handle, block.ctypes.data, len(block))
        finally:
            _sndfile.sf_close(handle)
        if written != len(pcm):
            raise ToolError(f"libsndfile wrote {written} of {len(pcm)} frames of {fmt}")
        # A full disk can also take the last pages, which libsndfile writes on closing and
        # does not report (an Ogg file 2% short came back whole): decode it back.
        if (decoded := _frames_in(path)) != len(pcm):
            raise ToolError(f"libsndfile wrote {decoded} of {len(pcm)} frames of {fmt}")
        return Path(path).read_bytes()


def _frames_in(path: str) -> int:
    info = _SFInfo()
    handle = _sndfile.sf_open(path.encode(), _SF_READ, ctypes.byref(info))
    if not handle:
        return 0
    buf, total = np.empty(65536, np.int16), 0
    try:
        while (n := _sndfile.sf_readf_short(handle, buf.ctypes.data, len(buf))) > 0:
            total += n
    finally:
        _sndfile.sf_close(handle)
    return total


def encode(pcm: np.ndarray, fmt: str) -> bytes:
    """int16 mono samples -> bytes in fmt."""
    if fmt == "wav":
        buf = io.BytesIO()
        with wave.open(buf, "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(SAMPLE_RATE)
            w.writeframes(np.ascontiguousarray(pcm, dtype="<i2").tobytes())
        return buf.getvalue()
    if fmt == "mp3":
        return _mp3(pcm)
    return _sndfile_encode(pcm, fmt)


# MP3 where LAME is there (with fluidsynth, it always is on Debian); else FLAC, which every
# major browser also plays, only larger; else WAV.
WEB_FORMAT = next(f for f in ("mp3", "flac", "wav") if can_encode(f))
WEB_MIME = MIME[WEB_FORMAT]


# -----------------------------------------------------------------------------
# fluidsynth


def _check_whole(frames: int, sounding: int, seconds: float, err: str) -> None:
    """Refuse a render that fluidsynth cut short: it exits 0 when it cannot write (a full
    disk), leaving the file short. `sounding`: frames up to the last one above -60 dB."""
    write_error = next((ln.strip() for ln in err.splitlines() if "write error" in ln.lower()),
                       None)  # (lost when the disk is too full for its messages too)
    if frames < seconds * SAMPLE_RATE or write_error:
        raise ToolError(f"fluidsynth wrote {frames / SAMPLE_RATE:.1f} s of a {seconds:.1f} s "
                        f"tune: {write_error or 'the rest is missing'}")
    # Past the MIDI's end fluidsynth (2.3.1 on) plays the last notes' release until its voices
    # are silent, then 2 s more (older ones stop at the end). So a render that went on past
    # the end must end in silence; if it stops while still sounding, its tail was cut.
    if frames > (seconds + 0.25) * SAMPLE_RATE and frames - sounding < SAMPLE_RATE // 2:
        raise ToolError(f"fluidsynth's render of the {seconds:.1f} s tune stops at "
                        f"{frames / SAMPLE_RATE:.1f} s while still sounding: the rest is missing")


def render_pcm(midi: bytes, soundfont: Path, timeout: float) -> np.ndarray:
    """MIDI -> int16 mono samples, peak-normalised (cached: every format starts here)."""
    exe = find_tool("fluidsynth")
    key = ("pcm", midi, str(soundfont))
    hit = pcm_cache.get(key)
    if hit is not None:
        return hit
    seconds = midi_seconds(midi)
    if seconds > MAX_AUDIO_SECONDS:
        raise ToolError(f"the tune plays longer than {MAX_AUDIO_SECONDS} s: not rendered")
    max_bytes = MAX_AUDIO_SECONDS * SAMPLE_RATE * 2 * 4
    with workdir() as tmp:
        Path(tmp, "tune.mid").write_bytes(midi)
        # -n -i: no MIDI driver, no shell; -q: quiet; -F: render to file as fast as possible.
        # Raw float samples keep full precision for normalising. -z 2048 writes in large
        # blocks (the samples are the same as with the default 64, only the padded tail grows).
        args = [exe, "-n", "-i", "-q", "-z", "2048", "-o", "synth.dynamic-sample-loading=1",
                *FLUIDSYNTH_EFFECTS, "-r", str(SAMPLE_RATE), "-T", "raw", "-O", "float",
                "-F", "out.raw", str(soundfont), "tune.mid"]
        try:
            # SDL's ALSA hotplug thread would hold fluidsynth's exit up to 0.1 s.
            rc, out, err, _ = run_tool(args, tmp, timeout,
                                       max_files=max_bytes + len(midi) + 65536,
                                       what=f"audio (over {MAX_AUDIO_SECONDS} s)",
                                       env={"SDL_AUDIODRIVER": "dummy"})
        except ToolError as e:
            if "grew past" in str(e):
                raise ToolError(
                    f"the tune plays longer than {MAX_AUDIO_SECONDS} s: not rendered"
                ) from None
            raise
        raw_path = os.path.join(tmp, "out.raw")
        samples = (np.fromfile(raw_path, dtype="<f4") if os.path.isfile(raw_path)
                   else np.zeros(0, "<f4"))
    if rc != 0 or samples.size == 0:
        why = next((ln.strip() for ln in (err + out).splitlines() if ln.strip()), f"exit code {rc}")
        raise ToolError(f"fluidsynth rendered no audio: {why}")
    mono = samples[0: samples.size // 2 * 2: 2]
    mono += samples[1: samples.size // 2 * 2: 2]  # left + right, in place (a view)
    peak = float(max(mono.max(), -mono.min()))
    if not np.isfinite(peak):
        raise ToolError("fluidsynth rendered invalid samples")
    gain = 10 ** (PEAK_DBFS / 20) / peak if peak > 1e-6 else 0.0
    loud = np.flatnonzero(np.abs(mono) > peak * 1e-3)  # above -60 dB
    _check_whole(mono.size, loud[-1] + 1 if loud.size else 0, seconds, err)
    # fluidsynth renders on for seconds of silence after the last note: cut below -60 dB.
    if loud.size:  # (a tune of rests keeps its silence)
        mono = mono[: loud[-1] + 1]
    mono *= np.float32(gain * 32767)
    pcm = np.rint(mono, out=mono).astype(np.int16)  # |x| <= 32767 * 0.89: no clipping
    pcm.setflags(write=False)  # shared through the cache
    return pcm_cache.put(key, pcm, pcm.nbytes)


def to_audio(
    abc: str, fmt: str = WEB_FORMAT, soundfont: str | None = None, timeout: float = 20
) -> bytes:
    """The tune as audio: 'wav' | 'flac' | 'oga' (Ogg Vorbis) | 'mp3'. Loud (peak -1 dBFS).

    `timeout` bounds each tool run (abc2midi, fluidsynth) separately.
    """
    fmt = {"ogg": "oga", "wave": "wav", "mpeg": "mp3"}.get(
        fmt.lower().lstrip("."), fmt.lower().lstrip(".")
    )
    if fmt not in AUDIO_FORMATS:
        raise ToolError(f"unknown audio format {fmt!r}: use one of {', '.join(AUDIO_FORMATS)}")
    font = find_soundfont(soundfont)
    find_tool("fluidsynth")
    midi = to_midi(abc, timeout=timeout)
    key = ("audio", midi, str(font), fmt)
    hit = cache.get(key)
    if hit is not None:
        return hit
    data = encode(render_pcm(midi, font, timeout), fmt)
    return cache.put(key, data, len(data))


def library_versions() -> dict[str, str | None]:
    return {"libsndfile": _sndfile.sf_version_string().decode().removeprefix("libsndfile-")
            if _sndfile is not None else None,
            "lame": _lame.get_lame_version().decode() if _lame is not None else None}

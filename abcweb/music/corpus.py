"""ABC corpora: load tunes, normalise them, split them into train and validation.

Sources:
- the ABC collections that ship inside the music21 package (read as plain files, music21 is
  never imported: that costs seconds and we only need its data folder);
- any `.abc` file, or uploaded bytes;
- the notebook's data set (irish.abc), kept exactly as it is.

What `normalise_tune` drops, so the model learns music and not transcribers' notes:
- comment lines (`%...`), `%%` directives and trailing `% comments`;
- header fields other than X, T, M, L, Q, K (R, B, N, Z, O, S, A, C, D, G, H, I, F, P, W...;
  abc2midi rejects `R:hornpipe` in any meter but 2/4 and 4/4),
  and in the body every field line except the inline K, M, L, P, Q changes;
- quoted text annotations (`"^text"`, `"_mf"`, fingerings like `"4"`); chord symbols stay;
- line continuations (`\\` at a line end) are joined, trailing spaces removed;
- non-ASCII letters are transliterated (é -> e), other characters outside the model's
  alphabet are removed;
- tunes with several voices (`V:`) or no `K:` line are left out altogether.
"""

from __future__ import annotations

import hashlib
import importlib.util
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

import regex as re

# The model's alphabet: newline plus printable ASCII. Every corpus is mapped into it, so a
# shipped model can be fine-tuned on any ABC file without growing its embedding.
ALPHABET = "\n" + "".join(chr(c) for c in range(32, 127))

# music21 collections that fit Irish and related (Scottish, English, American fiddle) styles.
# Essen (German and Chinese songs) and the classical scores are a different music.
MUSIC21_COLLECTIONS = {
    "oneills1850": "O'Neill's Music of Ireland (1850 edition)",
    "ryansMammoth": "Ryan's Mammoth Collection (1883)",
    "airdsAirs": "Aird's Selection of Scotch, English, Irish and Foreign Airs (1778-1803)",
    "miscFolk": "American Veteran Fifer and Northumbrian Minstrelsy",
}

HEADER_KEEP = set("XTMLQK")
BODY_FIELDS_KEEP = set("KMLPQ")
VALIDATION_EVERY = 10  # one tune in ten goes to validation
MAX_UPLOAD_BYTES = 5 << 20  # also [server] maxUploadSize in .streamlit/config.toml
IRISH_HELDOUT_OFFSET = 9  # irish.abc pieces 9, 19, 29, ... are the held-out yardstick

_FIELD = re.compile(r"^([A-Za-z]):\s*(.*)$")
_QUOTED = re.compile(r'"([^"\n]*)"')
_CHORD = re.compile(r"^\(?[A-G][#b]?(m|min|maj|dim|aug|sus|add|M)?[0-9]*(/[A-Ga-g][#b]?)?\)?$")


class CorpusError(ValueError):
    """A corpus that cannot be read or holds no tunes."""


@dataclass
class Corpus:
    name: str
    tunes: list[str]
    description: str = ""
    dropped: dict[str, int] = field(default_factory=dict)

    @property
    def chars(self) -> int:
        return sum(len(t) for t in self.tunes) + 2 * max(len(self.tunes) - 1, 0)

    def text(self) -> str:
        return "\n\n".join(self.tunes) + "\n"

    def split(self, every: int = VALIDATION_EVERY) -> tuple[Corpus, Corpus]:
        """Deterministic train/validation split by tune: a tune's hash decides its side, so the
        split does not move when tunes are added or reordered."""
        train, val = [], []
        for tune in self.tunes:
            bucket = int(hashlib.sha1(tune.encode()).hexdigest()[:8], 16) % every
            (val if bucket == 0 else train).append(tune)
        return (Corpus(self.name + ":train", train, self.description),
                Corpus(self.name + ":val", val, self.description))

    def summary(self) -> str:
        return f"{self.name}: {len(self.tunes)} tunes, {self.chars:,} characters"


def split_pieces(text: str) -> list[str]:
    """The notebook's cut: pieces between blank lines (`\\n\\n`), empty ones skipped."""
    return [p.strip("\n") for p in text.replace("\r\n", "\n").replace("\r", "\n").split("\n\n")
            if p.strip()]


def to_alphabet(text: str) -> tuple[str, int]:
    """Map text into ALPHABET: transliterate accents, tabs to spaces, drop what is left over.
    Returns the text and how many characters were dropped."""
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\t", " ")
    out, dropped = [], 0
    for ch in text:
        if ch in ALPHABET:
            out.append(ch)
            continue
        base = unicodedata.normalize("NFKD", ch).encode("ascii", "ignore").decode()
        if base and all(c in ALPHABET for c in base):
            out.append(base)
        else:
            dropped += 1
    return "".join(out), dropped


def _strip_comment(line: str) -> str:
    # `\%` is an escaped percent sign inside text, not a comment.
    m = re.search(r"(?<!\\)%", line)
    return line[: m.start()] if m else line


def _keep_quoted(m: re.Match) -> str:
    inner = m.group(1).strip()
    return m.group(0) if _CHORD.match(inner) else ""


def normalise_tune(raw: str) -> str | None:
    """One raw tune -> the tune in our house style, or None when it is not a usable tune."""
    text, _ = to_alphabet(raw)
    lines: list[str] = []
    pending = ""
    for line in text.split("\n"):
        if line.lstrip().startswith("%"):
            continue
        line = _strip_comment(line).rstrip()
        if line.endswith("\\"):  # continuation: join with the next line
            pending += line[:-1]
            continue
        line, pending = pending + line, ""
        if line.strip():
            lines.append(line)
    if pending.strip():
        lines.append(pending)

    header, body, in_body = [], [], False
    for line in lines:
        m = _FIELD.match(line)
        if not in_body:
            if not m:
                continue  # free text before the header ends
            key, value = m.group(1), m.group(2).strip()
            if key == "V":
                return None
            if key in HEADER_KEEP:
                header.append(f"{key}:{value}")
            if key == "K":
                in_body = True
            continue
        if m and len(m.group(1)) == 1 and not line.startswith("|"):
            key = m.group(1)
            if key == "V":
                return None
            if key in BODY_FIELDS_KEEP:
                body.append(f"{key}:{m.group(2).strip()}")
            continue
        line = _QUOTED.sub(_keep_quoted, line).rstrip()
        if line.strip():
            body.append(line)
    if not header or not header[0].startswith("X:") or not in_body or not body:
        return None
    return "\n".join(header + body)


def parse_abc(text: str, name: str, description: str = "", normalise: bool = True) -> Corpus:
    """Split ABC text into tunes. A tune starts at an `X:` line; text before the first one
    (a book's preface) is dropped. With normalise=False the notebook's blank-line pieces are
    kept byte for byte."""
    if not normalise:
        tunes = split_pieces(text)
        if not tunes:
            raise CorpusError(f"{name}: no tunes found")
        return Corpus(name, tunes, description)
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    chunks = re.split(r"(?m)^(?=X:)", text)
    tunes, dropped = [], 0
    for chunk in chunks:
        if not chunk.startswith("X:"):
            continue
        tune = normalise_tune(chunk)
        if tune is None:
            dropped += 1
        else:
            tunes.append(tune)
    if not tunes:
        raise CorpusError(f"{name}: no ABC tunes found (a tune starts with an 'X:' line and "
                          "needs a 'K:' line and some notes)")
    return Corpus(name, tunes, description, {"tunes": dropped})


def decode_upload(data: bytes, name: str = "upload") -> str:
    """Bytes from a file or an upload -> text, with a clear error for binary or non-UTF-8."""
    if len(data) > MAX_UPLOAD_BYTES:
        raise CorpusError(f"{name}: the file is {len(data) / 2**20:.1f} MB; the most is "
                          f"{MAX_UPLOAD_BYTES >> 20} MB")
    if not data or not data.strip():
        raise CorpusError(f"{name}: the file is empty")
    if b"\x00" in data[:8192]:
        raise CorpusError(f"{name}: this looks like a binary file, not ABC text")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        try:
            # Old ABC collections are often Latin-1; every byte decodes, so check it is text.
            text = data.decode("latin-1")
        except UnicodeDecodeError:  # pragma: no cover - latin-1 decodes everything
            raise CorpusError(f"{name}: not UTF-8 text") from None
        if sum(ch.isprintable() or ch in "\n\r\t" for ch in text) < 0.95 * len(text):
            raise CorpusError(f"{name}: not UTF-8 text") from None
        return text


def load_file(path: str | Path, normalise: bool = True) -> Corpus:
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise CorpusError(f"cannot read {path}: {e.strerror or e}") from None
    return parse_abc(decode_upload(data, path.name), path.stem, str(path), normalise)


def load_bytes(data: bytes, name: str = "upload") -> Corpus:
    return parse_abc(decode_upload(data, name), name, f"uploaded file {name}")


def music21_corpus_dir() -> Path:
    spec = importlib.util.find_spec("music21")
    if spec is None or not spec.submodule_search_locations:
        raise CorpusError("the training collections need music21, which is not installed "
                          "here: pip install 'abcweb[train]' (music21 ships them)")
    return Path(list(spec.submodule_search_locations)[0]) / "corpus"


def load_music21(collection: str) -> Corpus:
    if collection not in MUSIC21_COLLECTIONS:
        raise CorpusError(f"unknown collection {collection!r}; choose from "
                          + ", ".join(MUSIC21_COLLECTIONS))
    folder = music21_corpus_dir() / collection
    files = sorted(folder.glob("*.abc"))
    if not files:
        raise CorpusError(f"no .abc files in {folder}")
    text = "\n\n".join(decode_upload(f.read_bytes(), f.name) for f in files)
    return parse_abc(text, collection, MUSIC21_COLLECTIONS[collection])


@dataclass
class IrishSplit:
    """The notebook's data set cut the notebook's way, with our held-out yardstick."""
    train: Corpus
    heldout: Corpus

    @property
    def heldout_text(self) -> str:
        # Scored as one text: held-out pieces joined by blank lines (21,555 characters).
        return "\n\n".join(self.heldout.tunes)


def load_irish(path: str | Path) -> IrishSplit:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise CorpusError(f"cannot read {path}: {e.strerror or e}") from None
    pieces = text.split("\n\n")
    held = [p for i, p in enumerate(pieces) if i % 10 == IRISH_HELDOUT_OFFSET]
    train = [p.strip("\n") for i, p in enumerate(pieces)
             if i % 10 != IRISH_HELDOUT_OFFSET and p.strip()]
    desc = "irish.abc from the MIT 6.S191 course repository"
    return IrishSplit(Corpus("irish:train", train, desc), Corpus("irish:heldout", held, desc))


def load(spec: str) -> Corpus:
    """A corpus by name: a music21 collection name, or a path to an .abc file."""
    if spec in MUSIC21_COLLECTIONS:
        return load_music21(spec)
    return load_file(spec)

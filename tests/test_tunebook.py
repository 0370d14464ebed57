"""The tunebook (abcweb/web/tunebook.py, views/tunebook.py) and the editor (views/edit.py).

Library tests first (no model); then the page through AppTest with the shipped model (or the
checkpoint in $ABCWEB_WEIGHTS) and the real ABC tools.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from streamlit.runtime.memory_media_file_storage import MemoryMediaFileStorage
from streamlit.testing.v1 import AppTest

from abcweb.model import checkpoint
from abcweb.sampling.loop import MAX_PRIME
from abcweb.sound.tooling import MAX_ABC_CHARS
from abcweb.web import params, tunebook

from conftest import JIG, jigs, shown

APP = str(Path(__file__).resolve().parent.parent / "streamlit_app.py")
GENERATE, EDIT, TUNEBOOK = "views/generate.py", "views/edit.py", "views/tunebook.py"
WEIGHTS = os.environ.get("ABCWEB_WEIGHTS") or None
MODEL = checkpoint.model_id(WEIGHTS)  # the current model: book lines name it
PLANTED = ('X:1\nT:Planted error\nM:6/8\nL:1/8\nK:D\nDFA dAF|DFA d2e|\n'
           'fed "H7"cBA|dAF D3|]\n')  # abc2midi: an unknown guitar chord on line 7
PLAIN = "X:9\nT:Plain jig\nM:6/8\nL:1/8\nK:G\n|:GAB cBA|GAB d3:|\n"


def settings(**kw) -> params.Settings:
    return params.Settings(**{"model": MODEL, **kw})


def body(text: str) -> str:
    """A tune without its X: line (the book numbers tunes afresh)."""
    return "\n".join(ln for ln in text.split("\n") if not ln.startswith("X:"))


# == the library ===============================================================================
def test_a_book_round_trips_through_its_abc_file():
    tricky = settings(seed=42, prime="X:1\nT:A & B = 100% #1\nM:6/8\nK:G\n", temperature=0.75,
                      top_k=7, best=3, tempo=112, instrument="flute", transpose=-2)
    entries = [tunebook.Entry(JIG.format(n=5), tricky),
               tunebook.Entry(JIG.format(n=6).replace("Jig 6", "Second"), settings(seed=7)),
               tunebook.Entry(PLAIN)]
    text = tunebook.to_abc(entries)
    lines = text.split("\n")
    xs = [i for i, ln in enumerate(lines) if ln.startswith("X:")]
    assert [lines[i] for i in xs] == ["X:1", "X:2", "X:3"]  # each tune its own number
    for i, entry in zip(xs, entries):
        if entry.settings is None:
            assert not lines[i + 1].startswith("%abcweb")
            continue
        line = lines[i + 1]
        assert line.startswith("%abcweb seed=")
        # Every setting the share link has, in its format (new ones travel by themselves).
        query = {k: v[0] for k, v in parse_qs(line[len("%abcweb "):],
                                               keep_blank_values=True).items()}
        assert query == params.to_query(entry.settings)
    back, messages = tunebook.from_abc(text.encode())
    assert messages == []
    assert [e.settings for e in back] == [e.settings for e in entries]
    assert [body(e.text) for e in back] == [body(e.text) for e in entries]
    assert [(e.title, e.meter, e.key) for e in back] == [("Jig 5", "6/8", "D"),
                                                         ("Second", "6/8", "D"),
                                                         ("Plain jig", "6/8", "G")]
    # Written again, the book is the same file.
    assert tunebook.to_abc(back) == text


def test_a_settings_line_without_a_model_means_the_current_model():
    """params.from_query reads a query without `model` as a link made before ids (another
    model, best of 1); a book's line only lacks one when the page had no model to name."""
    entry = tunebook.Entry(JIG.format(n=1), params.Settings(seed=3))  # model "" (current)
    (back,), _ = tunebook.from_abc(tunebook.to_abc([entry]))
    assert back.settings == params.Settings(seed=3)
    assert back.settings.best == params.DEFAULTS.best != params.LEGACY_DEFAULTS.best


def test_a_book_round_trips_through_a_link():
    entries = [tunebook.Entry(JIG.format(n=1), settings(seed=1)),
               tunebook.Entry(PLAIN),
               tunebook.Entry(JIG.format(n=2), settings(seed=2, prime="X:1\nM:3/4\nK:A\n",
                                                        transpose=5))]
    url, notes = tunebook.link("http://host/tunebook?old=1#x", entries)
    assert url.startswith("http://host/tunebook?t=seed%3D1%26")
    assert notes and "1 tune without settings" in notes[0]
    values = parse_qs(urlsplit(url).query)["t"]
    back, messages = tunebook.from_link(values)
    assert messages == [] and back == [entries[0].settings, entries[2].settings]


def test_links_too_long_or_too_full_are_refused_with_a_reason():
    many = [tunebook.Entry(JIG.format(n=i), settings(seed=i))
            for i in range(tunebook.MAX_LINK_TUNES + 1)]
    with pytest.raises(tunebook.TunebookError, match="at most 25 tunes"):
        tunebook.link("", many)
    long_primes = [tunebook.Entry(JIG.format(n=i), settings(seed=i, prime="X:1\n" + "a" * 3000))
                   for i in range(3)]
    with pytest.raises(tunebook.TunebookError, match="characters long"):
        tunebook.link("", long_primes)
    with pytest.raises(tunebook.TunebookError, match="no tune in this book has settings"):
        tunebook.link("", [tunebook.Entry(PLAIN)])
    # A hand-made link: too many tunes, junk values, bad settings.
    junk = ["seed=banana", "nothing=here", "seed=5&temperature=9"] * 10
    back, messages = tunebook.from_link(junk)
    assert len(back) == 17  # of the first 25, those with settings (9 + 8)
    assert messages[0] == "the link holds 30 tunes: the first 25 are read"
    assert "tune 2 of the link: it holds no settings: left out" in messages
    assert "tune 3 of the link: temperature 9 is outside 0.0 .. 2.0: using 2.0" in messages
    assert "tune 1 of the link: seed 'banana' is not a number: using 0" in messages
    assert all(s.temperature <= 2 for s in back)


def test_tunes_from_other_files_are_kept_as_text_and_bad_settings_are_explained():
    text = ("%abc-2.1\n%%title My collection\n\n"  # a file header: no tune
            + PLAIN + "\n"
            + "X:2\n%abcweb just words\nT:Wordy\nK:D\nDEF|\n\n"
            + "X:3\n%abcweb seed=banana&temperature=0.8&prime=" + "A" * (MAX_PRIME + 10)
            + "&model=" + MODEL + "\nT:Hand-edited\nK:D\nDEF|\n")
    entries, messages = tunebook.from_abc(text)
    assert [e.title for e in entries] == ["Plain jig", "Wordy", "Hand-edited"]
    assert entries[0].settings is None and entries[0].text == PLAIN
    assert entries[1].settings is None and "%abcweb" not in entries[1].text
    assert "tune 2 (Wordy): its %abcweb line holds no settings: kept as text" in messages
    s = entries[2].settings
    assert s.seed == 0 and s.temperature == 0.8 and len(s.prime) == MAX_PRIME
    assert any("seed 'banana' is not a number" in m for m in messages)
    assert any("cut to 5,000" in m for m in messages)


@pytest.mark.parametrize("data, words", [
    (b"", "empty"),
    (b"\x00\x01\x02\xff" * 100, "binary"),
    (bytes(range(128, 256)) * 50, "not UTF-8"),
    (b"just words, no tunes\n", "no ABC tunes"),
    (b"x" * (tunebook.MAX_BOOK_BYTES + 1), "at most 1 MB"),
    (b"X:1\nK:D\n" + b"A" * MAX_ABC_CHARS + b"|\n", "no tune could be read: tune 1 is"),
])
def test_hostile_files_are_refused_with_a_clear_reason(data, words):
    with pytest.raises(tunebook.TunebookError, match=words):
        tunebook.from_abc(data, "bad.abc")


def test_thousands_of_tunes_are_read_up_to_the_cap_and_latin1_is_read():
    entries, messages = tunebook.from_abc(jigs(3000).encode())
    assert len(entries) == tunebook.MAX_TUNES
    assert messages == ["the file holds 3,000 tunes: the first 200 are read (a tunebook holds "
                        "at most 200)"]
    (entry,), _ = tunebook.from_abc("X:1\nT:Café\nK:D\nDEF|\n".encode("latin-1"))
    assert entry.title == "Café"
    # A huge tune among good ones is left out, not the whole file.
    text = JIG.format(n=1) + "\nX:2\nT:Huge\nK:D\n" + "A" * MAX_ABC_CHARS + "|\n"
    entries, messages = tunebook.from_abc(text)
    assert [e.title for e in entries] == ["Jig 1"]
    assert messages[0].startswith("tune 2 is 100,")


def test_adding_keeps_one_copy_of_a_tune_and_caps_the_book():
    a = tunebook.Entry(JIG.format(n=1), settings(seed=1))
    book, notes = tunebook.add([a], [a, tunebook.Entry(a.text, settings(seed=2))])
    assert len(book) == 2 and notes == []
    full = [tunebook.Entry(JIG.format(n=i)) for i in range(tunebook.MAX_TUNES)]
    book, notes = tunebook.add(full, [a])
    assert len(book) == tunebook.MAX_TUNES and "at most 200 tunes: 1 left out" in notes[0]


def test_saving_never_leaves_half_a_file(tmp_path, monkeypatch):
    path = tmp_path / "book.abc"
    tunebook.save(path, [tunebook.Entry(PLAIN)])
    before = path.read_text()
    assert tunebook.from_abc(path.read_bytes())[0][0].title == "Plain jig"

    def broken(*_):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(tunebook.os, "replace", broken)
    with pytest.raises(OSError):
        tunebook.save(path, [tunebook.Entry(JIG.format(n=i)) for i in range(50)])
    assert path.read_text() == before
    assert [p.name for p in tmp_path.iterdir()] == ["book.abc"]


# == the page ==================================================================================
@pytest.fixture
def downloads(monkeypatch) -> dict[str, bytes]:
    """What the page's download buttons hold, by media file id (AppTest drops its media
    store after each run)."""
    store: dict[str, bytes] = {}
    real = MemoryMediaFileStorage.load_and_get_id

    def spy(self, data, mimetype, kind, filename=None):
        file_id = real(self, data, mimetype, kind, filename)
        store[file_id] = data
        return file_id

    monkeypatch.setattr(MemoryMediaFileStorage, "load_and_get_id", spy)
    return store


def run_app(query: dict | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=90)
    for k, v in {**(query or {}), "model": checkpoint.model_id(WEIGHTS)}.items():
        at.query_params[k] = v
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def go(at: AppTest, page: str) -> AppTest:
    at.switch_page(page).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def button(at: AppTest, label: str):
    return next(b for b in at.button if b.label == label)


def click(at: AppTest, label: str) -> AppTest:
    button(at, label).click().run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def texts(elements) -> list[str]:
    return [shown(e.value) for e in elements]


def downloaded(at: AppTest, label: str, store: dict[str, bytes]) -> bytes:
    b = next(d for d in at.get("download_button") if d.proto.label == label)
    return store[Path(b.proto.url).stem]


def upload(at: AppTest, name: str, data: bytes) -> AppTest:
    at.get("file_uploader")[0].set_value((name, data, "text/plain"))
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def table(at: AppTest) -> dict[str, list]:
    return at.dataframe[0].value.to_dict("list")


def test_keep_a_tune_list_it_and_reopen_it_exactly(model_dir):
    at = run_app({"seed": "41", "temperature": "0.85", "instrument": "fiddle"})
    written = at.session_state["_text"]
    played = at.session_state["_rendered"]["tune"]
    click(at, "Keep")
    assert button(at, "Kept")
    (entry,) = at.session_state["book"]
    assert entry.text == tunebook.picked(written)
    # A link with settings but no `form` was made before bar proposals: it keeps form off.
    assert entry.settings == params.Settings(seed=41, temperature=0.85, instrument="fiddle",
                                             model=checkpoint.model_id(WEIGHTS), form=False)
    at.sidebar.number_input(key="seed").set_value(42).run()  # another tune, not kept
    assert at.session_state["_text"] != written and button(at, "Keep")

    go(at, TUNEBOOK)
    rows = table(at)
    assert rows["title"] == [entry.title] and rows["seed"] == [41]
    assert rows["meter"] == [tunebook.header(written, "M")]
    assert rows["key"] == [tunebook.header(written, "K")] and rows["key"][0]
    assert "temperature 0.85" in rows["settings"][0]
    assert "instrument fiddle" in rows["settings"][0]
    assert parse_qs(urlsplit(rows["link"][0]).query)["seed"] == ["41"]
    click(at, "Open")
    assert at.session_state["_text"] == written  # the same tune, played the same way
    assert at.session_state["_rendered"]["tune"] == played and "%%MIDI program 40" in played
    assert at.session_state["seed"] == 41 and at.sidebar.text[0].value.startswith("?seed=41&")
    assert button(at, "Kept")  # it is the kept tune
    click(at, "Kept")  # and a click takes it out again
    assert at.session_state["book"] == []


def test_the_book_downloads_uploads_back_and_travels_as_a_link(model_dir, downloads):
    at = run_app({"seed": "43"})
    first = at.session_state["_text"]
    click(at, "Keep")
    at.sidebar.number_input(key="seed").set_value(44).run()
    second = at.session_state["_text"]
    click(at, "Keep")
    go(at, TUNEBOOK)
    data = downloaded(at, "Download the tunebook (.abc)", downloads)
    text = data.decode()
    assert "\nX:1\n%abcweb seed=43&" in text and "\nX:2\n%abcweb seed=44&" in text
    entries, notes = tunebook.from_abc(data)
    assert notes == [] and [e.settings for e in entries] == [e.settings for e in
                                                              at.session_state["book"]]
    link = at.code[0].value
    assert link.startswith("/tunebook?t=seed%3D43")

    # Another visitor uploads the file, with a tune from elsewhere added to it.
    other = go(run_app(), TUNEBOOK)
    assert any("tunebook is empty" in i for i in texts(other.info))
    upload(other, "book.abc", data + b"\n" + PLAIN.encode())
    assert table(other)["title"][2] == "Plain jig"
    assert table(other)["seed"][:2] == [43, 44]
    assert any("3 tunes from the file: 2 with settings, 1 as text" in c
               for c in texts(other.caption))
    other.selectbox(key="book_pick").set_value(1).run()
    click(other, "Open")
    assert other.session_state["_text"] == second
    go(other, TUNEBOOK)
    other.selectbox(key="book_pick").set_value(2).run()
    assert button(other, "Open").disabled  # no settings: it opens in the editor
    click(other, "Edit")
    assert other.text_area(key="edit_text").value == PLAIN

    # A third opens the link: the tunes are written again from their settings.
    third = run_app()
    third.query_params.clear()
    third.query_params["t"] = parse_qs(urlsplit(link).query)["t"]
    go(third, TUNEBOOK)
    assert [tunebook.picked(first), tunebook.picked(second)] == [
        e.text for e in third.session_state["book"]]
    click(third, "Open")
    assert third.session_state["_text"] == first


def test_hostile_uploads_are_clear_errors_and_capped(model_dir):
    at = go(run_app(), TUNEBOOK)
    for data, words in [(b"\x00\x01\x02binary", "binary"),
                        (b"A" * (tunebook.MAX_BOOK_BYTES + 10), "at most 1 MB"),
                        (bytes(range(128, 160)) * 50, "not UTF-8"),
                        (b"X:1\nK:D\n" + b"ABcd|" * 30_000 + b"\n", "characters long")]:
        upload(at, "bad.abc", data)
        assert any(words in e for e in texts(at.error)), (words, texts(at.error))
        assert at.session_state["book"] == []
    upload(at, "many.abc", jigs(1500).encode())
    assert any("the first 200 are read" in w for w in texts(at.warning))
    assert len(table(at)["title"]) == tunebook.MAX_TUNES
    assert any(c.startswith("No link: no tune in this book has settings")
               for c in texts(at.caption))
    at.run()  # the same file is read once, not on every run
    assert len(at.session_state["book"]) == tunebook.MAX_TUNES


def test_an_edited_tune_is_marked_by_line_then_plays_once_fixed(model_dir):
    at = run_app({"seed": "45"})
    written = at.session_state["_text"]
    click(at, "Edit")
    box = at.text_area(key="edit_text")
    assert box.value == tunebook.picked(written)
    box.set_value(PLANTED).run()
    assert not at.exception
    assert any("Invalid ABC: abc2midi found 1 error" in e for e in texts(at.error))
    view = next(h.value for h in at.html if 'data-testid="abc-text"' in h.value)
    assert 'data-line="7" data-status="error"' in view and "Guitar chord" in view
    assert view.count('data-status="error"') == 1
    at.text_area(key="edit_text").set_value(PLANTED.replace('"H7"', '"A7"')).run()
    assert any("Valid ABC" in s for s in texts(at.success))
    rendered = at.session_state["_rendered"]
    assert rendered["errors"] == [] and rendered["midi"] > 20
    assert rendered["audio"] > 1000 and rendered["svg"] > 1000
    assert '"A7"' in rendered["tune"] and at.get("audio")
    # The sidebar's Play it controls play the edited tune too.
    at.sidebar.selectbox(key="instrument").set_value("flute").run()
    assert "%%MIDI program 73" in at.session_state["_rendered"]["tune"]


def test_continue_from_here_makes_the_edited_text_the_seed_text(model_dir):
    at = go(run_app({"seed": "46"}), EDIT)
    mine = "X:1\nT:Mine\nM:6/8\nL:1/8\nK:G\n|:GAB c2d|"
    at.text_area(key="edit_text").set_value(mine).run()
    click(at, "Continue from here")
    assert at.session_state["prime"] == mine and at.session_state["seed"] == 46
    assert at.session_state["meter"] == "6/8" and at.session_state["key"] == "G"
    assert at.session_state["_text"].startswith(mine)
    assert any("continues from your edited tune" in i for i in texts(at.info))
    # Characters the model does not know: refused, on the editor, with the reason.
    go(at, EDIT)
    at.text_area(key="edit_text").set_value("X:1\nT:Café ☃\nK:D\nDEF|").run()
    click(at, "Continue from here")
    assert any("does not know" in e and "☃" in e for e in texts(at.error))
    assert at.session_state["prime"] == mine and at.text_area(key="edit_text")
    # Longer than a seed text may be: its end is kept, and the page says so.
    long = jigs(60)
    assert len(long) > MAX_PRIME
    at.text_area(key="edit_text").set_value(long).run()
    click(at, "Continue from here")
    assert at.session_state["prime"] == long[-MAX_PRIME:]
    assert any(f"last 5,000 characters of your {len(long):,}" in i for i in texts(at.info))


def test_hostile_text_in_the_editor_meets_the_caps(model_dir):
    at = go(run_app(), EDIT)
    many = jigs(800)
    assert len(many) < MAX_ABC_CHARS
    at.text_area(key="edit_text").set_value(many).run()
    assert not at.exception
    assert any("holds 800 tunes" in c for c in texts(at.caption))
    assert at.session_state["_rendered"]["audio"] > 1000
    junk = "".join(map(chr, range(1, 0x2500, 7))) * 20
    at.text_area(key="edit_text").set_value(junk).run()
    assert not at.exception
    assert texts(at.error) or texts(at.warning)
    # The box holds at most the tools' cap; with the header line added for them, the tune is
    # past it and every tool says so, as for a written tune.
    at.text_area(key="edit_text").set_value("X:1\nK:D\n" + "A" * MAX_ABC_CHARS).run()
    assert not at.exception
    assert len(at.text_area(key="edit_text").value) == MAX_ABC_CHARS
    warnings = texts(at.warning)
    for what in ("Cannot check this tune", "No sheet music", "No audio"):
        assert f"{what}: ABC too long: 100007 characters, at most 100000 per tune" in warnings
    # A tempo of 1 beat a minute asks for hours of audio: stopped at the audio cap.
    slow = "X:1\nT:Slow\nM:4/4\nL:1/4\nQ:1/4=1\nK:C\n" + "CDEF|" * 12 + "\n"
    at.text_area(key="edit_text").set_value(slow).run()
    assert not at.exception
    assert any("No audio" in w for w in texts(at.warning)), texts(at.warning)


def test_a_book_link_is_read_once_and_a_bad_one_is_explained(model_dir):
    at = run_app()
    at.query_params.clear()
    at.query_params["t"] = [urlencode({"seed": "5", "prime": "X:1\nT:\u2603\n",
                                       "model": checkpoint.model_id(WEIGHTS)}),
                            "nothing=here", urlencode(params.to_query(settings(seed=8)))]
    go(at, TUNEBOOK)
    warnings = " ".join(texts(at.warning))
    assert "tune 2 of the link: it holds no settings" in warnings
    assert "the link's tune with seed 5 cannot be written" in warnings
    assert "does not know" in warnings
    assert [e.settings.seed for e in at.session_state["book"]] == [8]
    at.run()
    assert [e.settings.seed for e in at.session_state["book"]] == [8]

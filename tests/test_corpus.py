import pytest

from abcweb.music import corpus


def test_irish_split_is_the_yardstick(irish_path):
    split = corpus.load_irish(irish_path)
    assert len(split.heldout.tunes) == 80
    assert len(split.heldout_text) == 21555
    assert len(split.train.tunes) == 726
    text = irish_path.read_text()
    pieces = text.split("\n\n")
    assert split.heldout.tunes[0] == pieces[9] and split.heldout.tunes[-1] == pieces[799]
    held = set(split.heldout.tunes)
    assert not held & set(split.train.tunes)
    assert split.train.tunes[0] == pieces[0]  # kept byte for byte


@pytest.mark.parametrize("name", list(corpus.MUSIC21_COLLECTIONS))
def test_music21_collections_load(name):
    c = corpus.load_music21(name)
    assert len(c.tunes) > 150 and c.chars > 40_000
    for t in c.tunes:
        assert t.startswith("X:") and "\nK:" in t
        assert set(t) <= set(corpus.ALPHABET)
        assert "%" not in t.split("\n")[0]


def test_collection_sizes_are_reported():
    c = corpus.load_music21("oneills1850")
    assert c.summary().startswith("oneills1850: 2009 tunes")


def test_normalisation_drops_what_it_documents():
    raw = ("%% preface\nX: 7\nT: A Tune\nN: a note\nZ: someone\nB: a book\nM: 6/8\nL: 1/8\n"
           "K: D\n% a comment\n\"_mf\"dAF \"G\"DFA|\\\n dfe \"4\"dBA % tail comment\nW: words\n"
           "|:abc|]\n")
    (tune,) = corpus.parse_abc(raw, "t").tunes
    assert tune == ("X:7\nT:A Tune\nM:6/8\nL:1/8\nK:D\ndAF \"G\"DFA| dfe dBA\n|:abc|]")


def test_voices_and_keyless_pieces_are_left_out():
    c = corpus.parse_abc("X:1\nK:C\nV:1\nabc|\n\nX:2\nT:no key\n\nX:3\nK:G\nGAB|\n", "t")
    assert [t.split("\n")[0] for t in c.tunes] == ["X:3"]
    assert c.dropped["tunes"] == 2


def test_split_is_deterministic_and_disjoint():
    c = corpus.load_music21("miscFolk")
    tr, va = c.split()
    tr2, va2 = c.split()
    assert tr.tunes == tr2.tunes and va.tunes == va2.tunes
    assert len(tr.tunes) + len(va.tunes) == len(c.tunes)
    assert 0.05 < len(va.tunes) / len(c.tunes) < 0.2
    # adding a tune does not move the others
    tr3, va3 = corpus.Corpus("x", c.tunes + ["X:1\nK:C\ncde|"]).split()
    assert set(va.tunes) <= set(va3.tunes)


def test_transliteration():
    text, dropped = corpus.to_alphabet("T:Caf\u00e9 na g\u00c1ille \u266b\tx")
    assert text == "T:Cafe na gAille  x" and dropped == 1


@pytest.mark.parametrize("data, message", [
    (b"", "empty"), (b"   \n", "empty"), (b"\x00\x01\x02binary", "binary"),
    (bytes(range(128, 256)) * 10, "UTF-8"), (b"just some words\n", "no ABC tunes"),
    (b"X:1\nK:C\nabc|\n" * 500_000, "the most is 5 MB"),
])
def test_bad_uploads(data, message):
    with pytest.raises(corpus.CorpusError, match=message):
        corpus.load_bytes(data, "up.abc")


def test_latin1_upload_is_read():
    c = corpus.load_bytes("X:1\nT:Caf\u00e9\nK:D\nabc|\n".encode("latin-1"), "old.abc")
    assert c.tunes == ["X:1\nT:Cafe\nK:D\nabc|"]


def test_load_file_errors(tmp_path):
    with pytest.raises(corpus.CorpusError, match="cannot read"):
        corpus.load_file(tmp_path / "missing.abc")
    with pytest.raises(corpus.CorpusError, match="unknown collection"):
        corpus.load_music21("bach")

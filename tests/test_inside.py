"""Inside the LSTM: states and gates equal what the Keras model computes."""

import numpy as np
import pytest

from abcweb.inside import lstm_states
from abcweb.model import checkpoint
from abcweb.model.lstm import UnknownCharacters, build_model, encode, set_weights, zero_states

TEXT = "X:1\nT:Test\nM:6/8\nK:D\n|:dAF DFA|dfe dBA:|\n"


@pytest.mark.parametrize("folder", ["tiny_dir", "one_layer_dir"])  # two layers, and one
def test_states_equal_the_keras_models_step_by_step(folder, request):
    ck = checkpoint.load(request.getfixturevalue(folder))
    cfg = ck.config
    model = build_model(cfg)
    set_weights(model, cfg, ck.weights)
    st = lstm_states(ck, TEXT)
    assert st.c.shape == (cfg.layers, len(TEXT), cfg.units) == st.i.shape
    # Keras, one character at a time, its (h, c) state carried: the cell state at every step.
    state = zero_states(cfg, 1)
    for t, tok in enumerate(encode(TEXT, cfg.vocab)):
        _, *state = model([np.array([[tok]]), *state])
        state = [np.asarray(a) for a in state]
        for layer in range(cfg.layers):
            h, c = (a[0] for a in state[2 * layer: 2 * layer + 2])
            assert np.abs(st.h[layer, t] - h).max() < 1e-4
            assert np.abs(st.c[layer, t] - c).max() < 1e-4
    # The gates are the LSTM's: they rebuild Keras's cell and hidden states.
    for layer in range(cfg.layers):
        c_prev = np.vstack([np.zeros(cfg.units), st.c[layer, :-1]])
        g = (st.c[layer] - st.f[layer] * c_prev) / np.maximum(st.i[layer], 1e-6)
        assert np.all(np.abs(g) <= 1 + 1e-3)  # a tanh's range: the candidate the input let in
        assert np.abs(st.o[layer] * np.tanh(st.c[layer]) - st.h[layer]).max() < 1e-5
        for gate in (st.i, st.f, st.o):
            assert np.all((gate[layer] >= 0) & (gate[layer] <= 1))


def test_states_are_read_after_the_models_start_text(one_layer_dir):
    import dataclasses

    ck = checkpoint.load(one_layer_dir)
    started = checkpoint.Checkpoint(dataclasses.replace(ck.config, start="\n\n"), ck.weights,
                                    ck.info)
    st, whole = lstm_states(started, TEXT), lstm_states(ck, "\n\n" + TEXT)
    assert st.text == TEXT and st.c.shape[1] == len(TEXT)
    np.testing.assert_allclose(st.c, whole.c[:, 2:], atol=1e-6)
    np.testing.assert_allclose(st.f, whole.f[:, 2:], atol=1e-6)
    assert np.abs(st.c - lstm_states(ck, TEXT).c).max() > 1e-3


def test_bad_text_is_refused_clearly(one_layer_dir):
    ck = checkpoint.load(one_layer_dir)
    with pytest.raises(ValueError, match="no text"):
        lstm_states(ck, "")
    with pytest.raises(UnknownCharacters):
        lstm_states(ck, "X:1\nT:Caf\u00e9 \u2603\n")


def test_features_follow_the_abc():
    from abcweb.inside.features import features

    tune = "X:1\nM:6/8\nL:1/8\nK:D\n|:dAF [DF]FA|(de) {g}fe dB:|\n"
    f = features(tune)
    body = tune.index("|:")
    assert list(f["in_header"][:body]) == [1.0] * body and f["in_header"][body] == 0
    assert np.isnan(f["bar_position"][:body]).all()  # no bar in a header
    # Bar position: 0 at the bar line, 3/6 after dAF, back to 0 at the next bar line.
    assert f["bar_position"][body] == 0 and f["bar_position"][tune.index("[DF]")] == 0.5
    second = tune.index("(de)")
    assert f["bar_position"][second] == 0 and f["beat"][tune.index("fe")] == 0
    assert f["beat"][tune.index("dB:")] == 1  # the second dotted quarter of 6/8
    assert f["line_position"][tune.index("M:6/8") + 2] == 2
    assert f["since_bar"][second - 1] == 0 and f["since_bar"][second] == 1
    chord = tune.index("[DF]")
    assert list(f["in_chord"][chord: chord + 4]) == [1, 1, 1, 0] and f["in_chord"][chord - 1] == 0
    assert f["in_slur"][second + 1] == 1 and f["in_slur"][second + 4] == 0
    assert f["in_grace"][tune.index("{g}") + 1] == 1 and f["in_grace"][tune.index("fe")] == 0


@pytest.mark.slow
def test_the_shipped_model_has_cells_for_the_header_and_the_bar(irish_path):
    from abcweb.inside import cells_table, find_cells
    from abcweb.music import corpus

    tunes = list(corpus.load_irish(irish_path).heldout.tunes)[:20]
    rows = {r["feature"]: r for r in find_cells(checkpoint.load(None), tunes)}
    for name in ("in_header", "bar_position", "since_bar", "line_position"):
        best = max(abs(rows[name]["c"]["r"]), abs(rows[name]["h"]["r"]))
        assert rows[name]["tracked"] and best > 0.5, rows[name]
    # irish.abc's held-out tunes have no chords: said so, not given a made-up unit.
    assert not rows["in_chord"]["varies"] and not rows["in_chord"]["tracked"]
    assert "never changes in these tunes" in cells_table(list(rows.values()))


@pytest.mark.slow
def test_the_cells_command_prints_the_table(irish_path, capsys):
    from abcweb import cli

    assert cli.main(["cells", "--irish", str(irish_path)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("| feature | best cell state c |")
    assert "| in_header: inside the header" in out and "r = " in out

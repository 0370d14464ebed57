"""Inside the LSTM: states and gates equal what the Keras model computes."""

import numpy as np
import pytest

from abcweb import checkpoint
from abcweb.inside import lstm_states
from abcweb.model import UnknownCharacters, build_model, encode, set_weights, zero_states

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


def test_bad_text_is_refused_clearly(one_layer_dir):
    ck = checkpoint.load(one_layer_dir)
    with pytest.raises(ValueError, match="no text"):
        lstm_states(ck, "")
    with pytest.raises(UnknownCharacters):
        lstm_states(ck, "X:1\nT:Caf\u00e9 \u2603\n")

"""Layer 5: inside the LSTM. Every unit's cell state, hidden state and gates at every
character (states), named features of ABC text to find the cells that track them (features),
and their pictures (charts).

    from abcweb.inside import lstm_states
    st = lstm_states(sampler.ckpt, text)   # st.c[layer, t, unit], likewise h, i, f, o

It may import abcweb.music and abcweb.model (it reads a checkpoint's weights itself, so it
needs no sampler), and neither abcweb.evaluation nor abcweb.web.
"""

from abcweb.inside.states import MAX_CHARS, States, cells_table, find_cells, lstm_states

__all__ = ["MAX_CHARS", "States", "cells_table", "find_cells", "lstm_states"]

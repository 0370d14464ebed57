"""Layer 5: how good the tunes are. The yardsticks of a set of tunes against real ones, with
the real tunes' own spread (yardsticks), the shipped model's figures for its model card
(evaluate), and fitting a model's melody prior from its own draws (prior).

It may import every layer below it (music, sound, model, sampling), and neither abcweb.inside
nor abcweb.web.
"""

"""Layer 1: ABC text as music. Splitting text into tunes and classifying its characters
(tunes), reading one tune's key, bars, melody and form (facts), the collections we train on
(corpus) and the meter and key choices counted from them (headers).

Pure Python and NumPy: it may import nothing else of abcweb, so the music can be read, tested
and reused without the tools, the model or a page.
"""

"""Layer 2: the ABC tools, run safely. Running abc2midi, abcm2ps, abc2abc and fluidsynth with
time, size and memory caps and caching what they make (tooling), checking a tune (abccheck),
MIDI and sheet music (notation), audio (audio), transposing (transpose), playing a tune in a
tempo, key and instrument of the visitor's choosing (arrange), and one facade over them all
(abctools, which the command line's `render` uses).

It may import abcweb.music and nothing above it: what a tune sounds like never depends on
how it was written.
"""

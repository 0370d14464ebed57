"""The public sampler: the loop (loop.py) with the best of several drafts (drafts.py) and
sampling worker processes (sample_worker.py) on top.

    from abcweb import load_sampler
    s = load_sampler()
    g = s.generate(prime="X:", length=600, temperature=0.9, seed=0)   # the best of 8 drafts
    g.copies                      # bars the model chose from earlier ones (form.py)
    s.generate(..., form=False)   # the model's own bars only, as before form existed

`Sampler` is a `Loop` that judges drafts, and that hands the NumPy loop to a sampling worker
when its checkpoint is a folder a worker can load: in a page server every visitor's script is
a thread of one process, and a loop there would wait for the GIL at every character.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from abcweb.model import checkpoint as ckpt_io
from abcweb.model.lstm import encode
from abcweb.sampling import drafts, melody
from abcweb.sampling.loop import Generation, Loop, _whole, check_args, check_top_p

FORM = True  # bar proposals by default (form.py): real tunes come back to their bars


class Sampler(Loop):
    """A Loop whose generate() writes the best of several drafts, in a sampling worker when
    it can (workers=False, or a checkpoint only in memory, keeps it in the calling thread)."""

    def __init__(self, ckpt: ckpt_io.Checkpoint, backend: str = "auto", threads: int | None = 1,
                 workers: bool = True):
        super().__init__(ckpt, backend, threads)
        self.workers = bool(workers) and ckpt.path is not None and ckpt.sha256 is not None
        # The model's melody prior breaks ties between drafts (melody.py); a model without
        # one picks as it always did.
        self.melody_prior = melody.model_prior(ckpt)

    def _in_worker(self) -> bool:
        return self.backend == "numpy" and self.workers

    def generate(self, prime: str = "X:", length: int = 600, temperature: float = 1.0,
                 seed: int = 0, top_k: int = 0, stop_at_end: bool = True,
                 best_of: int = drafts.BEST_OF, top_p: float = 1.0,
                 form: bool = FORM) -> Generation:
        """A tune: the best of `best_of` drafts by the musical yardsticks (drafts.py), each
        the model's own tune for its draft seed; best_of=1 is the model's draw for `seed`
        alone. form=True: at each bar start the model also weighs earlier bars of the tune
        and its own probabilities choose (form.py); False: every bar is its own draw."""
        best_of = _whole(best_of, "best-of")
        if not 1 <= best_of <= drafts.MAX_BEST_OF:
            raise ValueError(f"best-of must be from 1 to {drafts.MAX_BEST_OF}, not {best_of}")
        if not isinstance(form, (bool, np.bool_)):
            raise ValueError(f"form must be True or False, not {str(form)[:40]!r}")
        form = bool(form)
        if best_of == 1 and not form:
            return self.generate_many(prime, length, temperature, [seed], top_k, stop_at_end,
                                      top_p=top_p)[0]
        length, temperature, top_k, (seed,) = check_args(prime, length, temperature, top_k,
                                                         len(self.vocab), [seed], stop_at_end)
        top_p = check_top_p(top_p)
        encode(prime, self.vocab, "seed text")
        seeds = drafts.draft_seeds(seed, best_of)
        if self._in_worker():
            from abcweb.sampling.sample_worker import pool

            i, text, logits, found, copies = pool().best(
                str(self.ckpt.path), self.ckpt.sha256, prime, length, temperature, seeds,
                top_k, stop_at_end, threads=self.threads, top_p=top_p, form=form)
        else:
            i, text, logits, found, copies = self.best_draft(prime, length, temperature, seeds,
                                                             top_k, stop_at_end, top_p, form)
        stopped = "end" if stop_at_end and len(text) < length else "length"
        return Generation(prime, text, logits, self.vocab, temperature, top_k, seed, stopped,
                          top_p, i, found, copies=copies, form=form)

    def best_draft(self, prime: str, length: int, temperature: float, seeds: list[int],
                   top_k: int, stop_at_end: bool, top_p: float = 1.0, form: bool = False
                   ) -> tuple[int, str, np.ndarray, list[dict], list[dict]]:
        """All drafts in one batch, judged here (drafts.best_draft)."""
        return drafts.best_draft(self, self.melody_prior, prime, length, temperature, seeds,
                                 top_k, stop_at_end, top_p, form)

    def _texts_and_logits(self, prime, length, temperature, seeds, top_k, stop_at_end, top_p):
        if not self._in_worker():
            return super()._texts_and_logits(prime, length, temperature, seeds, top_k,
                                             stop_at_end, top_p)
        from abcweb.sampling.sample_worker import pool

        return pool().generate(str(self.ckpt.path), self.ckpt.sha256, prime, length,
                               temperature, seeds, top_k, stop_at_end, threads=self.threads,
                               top_p=top_p)


_SHIPPED: dict[tuple[str, bool], Sampler] = {}
_SHIPPED_LOCK = threading.Lock()


def load_sampler(path: str | Path | None = None, backend: str = "auto",
                 workers: bool = True) -> Sampler:
    """A Sampler for a checkpoint folder; None means the shipped weights (loaded once).
    workers=False samples in the calling thread (a one-shot command line has no other
    threads to share the GIL with, and is spared starting a worker)."""
    if path is None:
        with _SHIPPED_LOCK:
            if (backend, workers) not in _SHIPPED:
                _SHIPPED[backend, workers] = Sampler(ckpt_io.load(None), backend,
                                                     workers=workers)
            return _SHIPPED[backend, workers]
    return Sampler(ckpt_io.load(path), backend, workers=workers)

"""Shut down a visitor's session once Streamlit has let go of it, and what the session holds.

Streamlit keeps a disconnected session for server.disconnectedSessionTTL seconds (a reconnect
finds it again), then drops it from its storage without shutting it down. So its event loop
(an epoll and a socket pair: three file descriptors), its media files (the audio, in the
server's memory) and its session state, with a visitor's training job (a worker that may still
be training, a model in a temporary folder), lived until a full garbage collection happened
to break their cycles, which with runner.postScriptGC off can be a long time. bench/soak.py
found the training folders and the descriptors of departed visitors still there.

So each run of the page calls watch(), and a thread looks at the watched sessions every
REAP_EVERY_S: one that has not been connected for longer than the TTL (plus a margin for this
thread's own period) is gone for good, and is released: its training jobs are cleaned up, its
state cleared, and the session shut down as Streamlit would have (its media released, its
event loop closed).
"""

from __future__ import annotations

import logging
import threading
import time

REAP_EVERY_S = 10.0
MARGIN_S = 2 * REAP_EVERY_S  # past the TTL: when a session was last seen active is known
# only to within one period

_watched: dict[str, tuple[object, float]] = {}  # session id -> its AppSession, last seen active
_lock = threading.Lock()
_thread: threading.Thread | None = None


def _app_session(session_id: str):
    """The AppSession of a connected session, from Streamlit's session manager (the script
    run context does not hold it)."""
    from streamlit import runtime

    # A private attribute: where a Streamlit release (or AppTest's stand-in runtime) lacks it,
    # sessions are left to Streamlit, as before, rather than the page failing.
    manager = getattr(runtime.get_instance(), "_session_mgr", None)
    get_info = getattr(manager, "get_active_session_info", None)
    if get_info is None:
        return None
    try:
        info = get_info(session_id)
    except Exception:
        return None
    session = getattr(info, "session", None)
    return session if session is not None and hasattr(session, "shutdown") else None


def watch() -> None:
    """Remember the session of the current script run (cheap when it is known already)."""
    from streamlit.runtime.scriptrunner import get_script_run_ctx

    global _thread
    ctx = get_script_run_ctx()
    if ctx is None:
        return
    with _lock:
        known = ctx.session_id in _watched
    if known:
        return
    session = _app_session(ctx.session_id)
    if session is None:
        return
    with _lock:
        # Held until released: no longer than Streamlit holds it, plus MARGIN_S.
        _watched.setdefault(ctx.session_id, (session, time.monotonic()))
        if _thread is None:
            _thread = threading.Thread(target=_reap_forever, daemon=True,
                                       name="abcweb-session-reaper")
            _thread.start()


def _reap_forever() -> None:
    while True:
        time.sleep(REAP_EVERY_S)
        try:
            reap_gone()
        except Exception:  # the reaper must outlive any one session's trouble
            logging.getLogger(__name__).exception("releasing a departed session")


def reap_gone(now: float | None = None) -> list[str]:
    """Release every watched session that has been disconnected past the TTL; their ids."""
    from streamlit import config, runtime

    if not runtime.exists():
        return []
    rt = runtime.get_instance()
    now = time.monotonic() if now is None else now
    ttl = float(config.get_option("server.disconnectedSessionTTL"))
    gone = []
    with _lock:
        for sid, (session, seen) in list(_watched.items()):
            if rt.is_active_session(sid):
                _watched[sid] = (session, now)
            elif now - seen > ttl + MARGIN_S:
                gone.append((sid, session))
                del _watched[sid]
    for _, session in gone:
        release(session)
    return [sid for sid, _ in gone]


def release(session) -> None:
    """End the session's training jobs, clear its state and shut it down."""
    from abcweb.web.training_job import TrainingJob

    state = session.session_state  # no script runs in a session Streamlit has dropped
    for v in list(state.filtered_state.values()):
        for job in v if isinstance(v, list | tuple) else [v]:
            if isinstance(job, TrainingJob):
                job.cleanup()
    state.clear()
    session.shutdown()

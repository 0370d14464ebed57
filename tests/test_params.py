"""Share links: query parameters <-> generation settings."""

from urllib.parse import parse_qs, urlsplit

import pytest
from hypothesis import given
from hypothesis import strategies as st

from abcweb.sampling.loop import MAX_PRIME
from abcweb.sound.arrange import INSTRUMENTS
from abcweb.web import params
from abcweb.web.params import DEFAULTS, Settings, from_query, share_url, to_query


def test_missing_parameters_take_defaults_silently():
    settings, messages = from_query({})
    assert settings == DEFAULTS
    assert messages == []


def test_a_link_the_page_writes_comes_back_unchanged():
    s = Settings(seed=123456, prime="X:1\nM:6/8\nL:1/8\nK:G\n", length=450, temperature=0.85,
                 top_k=7, best=3, model="0123456789ab")
    back, messages = from_query(to_query(s))
    assert back == s
    assert messages == []


def test_share_url_round_trips_through_a_real_query_string():
    s = Settings(seed=9, prime='X:1\nT:A "quoted" & odd #title?\nK:D\n', length=600,
                 temperature=1.35, top_k=0, model="fedcba987654")
    url = share_url("http://host:8501/app?old=1#frag", s)
    parts = urlsplit(url)
    assert parts.scheme == "http" and parts.netloc == "host:8501" and parts.path == "/app"
    assert "old" not in url and "#" not in url
    query = {k: v[0] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
    assert from_query(query) == (s, [])


def test_share_url_without_a_base_is_just_the_query():
    assert share_url(None, DEFAULTS).startswith("?seed=0&")


@pytest.mark.parametrize("key,raw,expected,fragment", [
    ("seed", "abc", 0, "not a number"),
    ("seed", "-5", 0, "outside"),
    ("seed", str(2**40), params.SEED_MAX, "outside"),
    ("seed", "7.9", 7, "not a whole number"),
    ("length", "nan", 600, "not a number"),
    ("length", "5", params.LENGTH_MIN, "outside"),
    ("length", "99999", params.LENGTH_MAX, "outside"),
    ("length", "455", 460, "rounded"),
    ("temperature", "hot", 1.0, "not a number"),
    ("temperature", "inf", 1.0, "not a number"),
    ("temperature", "-1", 0.0, "outside"),
    ("temperature", "7", 2.0, "outside"),
    ("temperature", "0.73", 0.75, "rounded"),
    ("top_k", "x", 0, "not a number"),
    ("top_k", "500", params.TOP_K_MAX, "outside"),
    ("top_k", "-1", 0, "outside"),
    ("tempo", "10", 24, "below"),
    ("tempo", "999", 204, "outside"),
    ("tempo", "fast", 0, "not a number"),
    ("tempo", "101", 100, "rounded"),
    ("transpose", "20", 12, "outside"),
    ("instrument", "kazoo", "piano", "not one of"),
])
def test_bad_values_are_replaced_with_a_message(key, raw, expected, fragment):
    settings, messages = from_query({key: raw})
    assert getattr(settings, key) == expected
    assert len(messages) >= 1
    assert any(fragment in m and key in m for m in messages), messages
    # Only the bad parameter changes; a link with settings and no model id predates ids, so
    # the rest take the defaults of that day.
    for other in params.KEYS:
        if other != key:
            assert getattr(settings, other) == getattr(params.LEGACY_DEFAULTS, other)


def test_links_name_their_model_and_old_links_name_the_model_they_were_made_with():
    assert to_query(Settings(model="0123456789ab"))["model"] == "0123456789ab"
    assert "model" not in to_query(DEFAULTS)  # the page always fills it in
    # A bare address: the current model. Settings without an id: made before ids existed.
    assert from_query({})[0].model == ""
    assert from_query({"seed": "5"})[0].model == params.LEGACY_MODEL
    assert from_query({"seed": "5", "model": " 0123456789AB "}) == (
        Settings(seed=5, model="0123456789ab", form=False), [])
    # Links before ids were the model's own draw; later ones say how many drafts.
    assert from_query({"seed": "5"})[0] == params.Settings(
        seed=5, temperature=1.0, best=1, model=params.LEGACY_MODEL, form=False)
    assert from_query({})[0].best == params.BEST_OF
    assert from_query({"seed": "5", "model": "0123456789ab"})[0].best == params.BEST_OF
    s, messages = from_query({"best": "99", "model": "0123456789ab"})
    assert s.best == params.MAX_BEST_OF and "best 99 is outside" in messages[0]
    for bad in ("xyz", "0123456789a", "0123456789abc", "../weights"):
        s, messages = from_query({"seed": "5", "model": bad})
        assert s.model == "" and "not a model id" in messages[0]


def test_empty_and_overlong_seed_text():
    s, messages = from_query({"prime": ""})
    assert s.prime == DEFAULTS.prime and "empty" in messages[0]
    s, messages = from_query({"prime": "a" * (MAX_PRIME + 10)})
    assert len(s.prime) == MAX_PRIME and "cut" in messages[0]


def test_seed_text_keeps_its_characters_and_normalises_line_ends():
    # Unknown characters are the sampler's to refuse, with its own message in the page.
    s, messages = from_query({"prime": "X:1\r\nT:Café\r\n"})
    assert s.prime == "X:1\nT:Café\n"
    assert messages == []


def test_repeated_parameters_take_the_last_value():
    s, _ = from_query({"seed": ["1", "2"]})
    assert s.seed == 2


@given(seed=st.integers(0, params.SEED_MAX),
       length=st.integers(params.LENGTH_MIN // params.LENGTH_STEP,
                          params.LENGTH_MAX // params.LENGTH_STEP),
       t=st.integers(0, 40), k=st.integers(0, params.TOP_K_MAX), p=st.integers(1, 20),
       prime=st.text(min_size=1, max_size=50).filter(lambda p: "\r" not in p),
       best=st.integers(1, params.MAX_BEST_OF),
       tempo=st.sampled_from(params.TEMPOS), instrument=st.sampled_from(list(INSTRUMENTS)),
       transpose=st.integers(-12, 12),
       model=st.from_regex(params.MODEL_ID, fullmatch=True))
def test_round_trip_property(seed, length, t, k, p, prime, best, tempo, instrument, transpose,
                             model):
    s = Settings(seed, prime, length * params.LENGTH_STEP, params.round_temperature(t * 0.05),
                 k, params.round_top_p(p * 0.05), best, tempo, instrument, transpose, model)
    assert from_query(to_query(s)) == (s, [])


@given(st.dictionaries(st.sampled_from(params.KEYS), st.text(max_size=20)))
def test_any_query_gives_valid_settings(query):
    s, _ = from_query(query)
    assert 0 <= s.seed <= params.SEED_MAX
    assert params.LENGTH_MIN <= s.length <= params.LENGTH_MAX
    assert s.length % params.LENGTH_STEP == 0
    assert params.TEMPERATURE_MIN <= s.temperature <= params.TEMPERATURE_MAX
    assert 0 <= s.top_k <= params.TOP_K_MAX
    assert params.TOP_P_MIN <= s.top_p <= 1 and s.top_p == params.round_top_p(s.top_p)
    assert 1 <= len(s.prime) <= MAX_PRIME


def test_links_made_before_bar_proposals_keep_their_tunes():
    # A bare address: the page's defaults, bars come back.
    assert from_query({})[0].form is True and params.DEFAULTS.form is True
    # Links with settings but no `form` were made before proposals: every bar the model's draw.
    assert from_query({"seed": "5", "model": "0123456789ab"})[0].form is False
    assert from_query({"seed": "5"})[0].form is False
    # Links the page writes now always say which, and read back the same.
    for form in (True, False):
        s = Settings(seed=7, model="0123456789ab", form=form)
        assert to_query(s)["form"] == str(int(form))
        assert from_query(to_query(s)) == (s, [])
    for text, want in (("on", True), ("OFF", False), (" 1 ", True), ("false", False)):
        assert from_query({"seed": "1", "form": text})[0].form is want
    s, messages = from_query({"seed": "1", "form": "[x](http://127.0.0.1/)"})
    assert s.form is True and "is not 1 or 0" in messages[0]

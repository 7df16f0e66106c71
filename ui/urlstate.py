"""A page's knobs in its URL: ``restore`` a link's values into the widgets, ``publish`` the widgets back.

A page calls ``restore(page)`` before its first widget and ``publish(page)`` after its last; ``data_default``
and ``fit`` go just before a widget whose default or options depend on data (a model, a preset, the store).
The schemas and checks are sslcore.urlstate's. What Streamlit does here (1.67, read in its source and seen
in Chromium, tests/test_browser_urlstate.py):

- Assigning st.query_params sends the new query string to the browser (a history entry) and does not rerun.
- A page switch from the menu clears the query string (bar ``embed``; ``run`` and ``race`` go too) and
  drops the left page's widget values, so a page opened from the menu shows its defaults, as before.
- Back and forward rerun the page with that entry's query string: ``restore`` applies any URL that differs
  from the one this session last restored or published for the page.
- A value set through st.session_state before its widget is created reaches the browser too; deleting the
  key does not (the browser keeps showing the old value of a widget whose identity is its key), so a value
  goes back to its default by being set to it.
- When the widget also gets an explicit default (``value=``, ``index=``), Streamlit logs a server warning
  once per process; a link overriding the default is the point here, so .streamlit/config.toml turns it off
  (``global.disableWidgetStateDuplicationWarning``). A st.rerun() between the two would not help: a
  script-requested rerun does not age the values the way a browser rerun does.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import streamlit as st

from sslcore.urlstate import decode, default_of, encode, field_for, pages

_SEEN = "_urlstate_seen"  # page -> its query parameters as last restored or published in this session
_LINKED = "_urlstate_linked"  # widget key -> (URL name, URL text, value) that a link set
_JUST = "_urlstate_just"  # widget keys a link set in this script run
_PENDING = "_urlstate_pending"  # widget keys a link left out, waiting for their data-dependent default
_DEFAULTS = "_urlstate_defaults"  # widget key -> its data-dependent default as the page last gave it


def _state(name: str, empty: Any) -> Any:
    if name not in st.session_state:
        st.session_state[name] = empty
    return st.session_state[name]


def _set(key: str, value: Any) -> None:
    if key not in st.session_state or st.session_state[key] != value:
        st.session_state[key] = value


def restore(page: str) -> None:
    """Copy the link's values into the page's widget keys, on the page's first run in this session and
    whenever the URL differs from what was last published; a key the link leaves out goes back to its
    default. Values the link gets wrong are named in a warning and ignored."""
    just: set[str] = _state(_JUST, set())
    just.clear()
    seen: dict[str, dict[str, str]] = _state(_SEEN, {})
    params = st.query_params.to_dict()
    owned = {k: v for k, v in params.items() if k in pages()[page].names}
    if seen.get(page) == owned:
        return
    seen[page] = owned
    values, problems = decode(page, params)
    linked: dict[str, tuple[str, str, Any]] = _state(_LINKED, {})
    pending: set[str] = _state(_PENDING, set())
    for field in pages()[page].fields:
        linked.pop(field.key, None)
        pending.discard(field.key)
        if field.key in values:
            linked[field.key] = (field.name, params[field.name], values[field.key])
            just.add(field.key)
            _set(field.key, values[field.key])
        elif field.key in st.session_state:
            default = default_of(field)
            if default is None:
                pending.add(field.key)  # data_default sets it once the page knows it
            else:
                _set(field.key, default)
    for problem in problems:
        st.warning(problem, icon=":material/link_off:")


def data_default(key: str, value: Any) -> None:
    """Before a widget whose default depends on data (the model's last block, the preset's coordinates):
    the value a link leaves out, that the URL then omits, and that the widget follows when the data changes
    (a new preset resets the coordinates), as an unkeyed widget would, unless a link just set it."""
    defaults: dict[str, Any] = _state(_DEFAULTS, {})
    changed = key in defaults and defaults[key] != value
    defaults[key] = value
    pending: set[str] = _state(_PENDING, set())
    if key in pending or (changed and key not in _state(_JUST, set())):
        pending.discard(key)
        if key in st.session_state:
            _set(key, value)


def fit(key: str, allowed: Collection[Any], what: str) -> None:
    """Before a widget whose options depend on data (a model's blocks, the runs in the store): replace a
    value they rule out by the default, so the widget does not fail; from a list keep what is allowed.
    Says so when the value came from the link."""
    if key not in st.session_state:
        return
    value = st.session_state[key]
    if isinstance(value, list):
        if all(v in allowed for v in value):
            return
        st.session_state[key] = [v for v in value if v in allowed]
    elif value in allowed:
        return
    else:
        field = field_for(key)
        default = st.session_state.get(_DEFAULTS, {}).get(key, field.default)
        if default in allowed:
            st.session_state[key] = default
        else:
            del st.session_state[key]
    name, text, linked = st.session_state.get(_LINKED, {}).get(key, (None, None, None))
    if name is not None and linked == value:
        quoted = f"`{name}={text.replace('`', chr(39))[:200]}`"  # Markdown code: the link cannot format it
        st.warning(f"The link's value {quoted} names some that are not in {what}: they were left out."
                   if isinstance(value, list) else f"The link's value {quoted} does not fit {what} and was ignored.",
                   icon=":material/link_off:")


def publish(page: str) -> None:
    """Write the page's current widget values into the URL, leaving what other features keep there (``run``,
    ``race``) exactly as it is."""
    schema = pages()[page]
    values = {key: st.session_state[key] for key in schema.keys if key in st.session_state}
    wanted = encode(page, values, st.session_state.get(_DEFAULTS))
    every_page = frozenset().union(*(s.names for s in pages().values()))
    current = {k: st.query_params.get_all(k) for k in st.query_params}
    # Another page's names (left by a switch_page that kept them) go; everything else stays as it is.
    kept = {k: v[0] if len(v) == 1 else v for k, v in current.items() if k not in every_page}
    new = {**kept, **wanted}
    if {k: v if isinstance(v, list) else [v] for k, v in new.items()} != current:
        st.query_params.from_dict(new)
    _state(_SEEN, {})[page] = wanted

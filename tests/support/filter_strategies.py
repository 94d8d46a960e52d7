"""Hypothesis strategies for filter trees and the request metadata they are matched against.

Keys and values come from small pools so that generated filters actually hit generated records;
the pools include whitespace and every punctuation character Bedrock's filter pattern allows, and
the empty value. ``filters()`` yields ``logtap.filters`` trees: Bedrock-shaped documents (a base
filter, or andAll/orAll of 1-16 base filters) and, with ``nested=True``, the deeper trees that
``combine`` builds for local queries.
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from logtap.filters import AndAll, Equals, Filter, NotEquals, OrAll

KEYS = ("project", "team", "env", "a b", "x:y", "x:y/z", "k=v+$@-._")
VALUES = ("", "support", "search", "prod", "dev", "Prod", "code-review", "v 1", "with space", "a.b_c:d/e=f+g$h@i-j")

keys = st.sampled_from(KEYS)
values = st.sampled_from(VALUES)


def base_filters() -> st.SearchStrategy[Filter]:
    return st.one_of(st.builds(Equals, keys, values), st.builds(NotEquals, keys, values))


def filters(*, nested: bool = False) -> st.SearchStrategy[Filter]:
    base = base_filters()
    flat = st.one_of(
        base,
        st.lists(base, min_size=1, max_size=16).map(lambda items: AndAll(tuple(items))),
        st.lists(base, min_size=1, max_size=16).map(lambda items: OrAll(tuple(items))),
    )
    if not nested:
        return flat
    return st.recursive(
        flat,
        lambda children: st.one_of(
            st.lists(children, min_size=1, max_size=4).map(lambda items: AndAll(tuple(items))),
            st.lists(children, min_size=1, max_size=4).map(lambda items: OrAll(tuple(items))),
        ),
        max_leaves=12,
    )


def request_metadata() -> st.SearchStrategy[dict[str, str] | None]:
    """A record's ``requestMetadata``: absent (None), or 1-6 entries from the pools."""
    return st.one_of(st.none(), st.dictionaries(keys, values, min_size=1, max_size=6))


def metadata_population() -> st.SearchStrategy[list[dict[str, Any] | None]]:
    return st.lists(request_metadata(), min_size=1, max_size=25)

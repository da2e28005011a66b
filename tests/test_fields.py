"""The one JSON-object checker behind request bodies, environment variables and webhook conditions."""

from __future__ import annotations

import pytest

from jupyter_actors.platform.errors import InvalidInput
from jupyter_actors.platform.fields import checked_fields

FIELDS = {"name": str, "count": (int, type(None)), "flag": bool}


def test_a_good_object_passes_whole():
    body = {"name": "x", "count": None, "flag": False}
    assert checked_fields(body, FIELDS) is body


@pytest.mark.parametrize(("body", "message"), [
    ([], "The thing must be a JSON object with some of: name, count, flag."),
    ({"name": "x", "extra": 1, "other": 2},
     "The thing has unknown field(s): extra, other. Allowed: name, count, flag."),
    ({"count": True}, "The thing: field count must be a whole number or null, not true or false."),
    ({"flag": 1}, "The thing: field flag must be true or false, not a whole number."),
])
def test_a_bad_object_is_refused_saying_what_to_fix(body, message):
    with pytest.raises(InvalidInput) as refused:
        checked_fields(body, FIELDS, what="The thing")
    assert str(refused.value) == message


def test_unknown_fields_may_pass_unchecked_but_known_ones_are_still_checked():
    body = {"name": "x", "isPublic": True}
    assert checked_fields(body, FIELDS, ignore_unknown=True) == body
    with pytest.raises(InvalidInput, match="field name must be a string"):
        checked_fields({"name": 3, "isPublic": True}, FIELDS, ignore_unknown=True)

"""Settlement and movement ids are RFC 4122 version-5 UUIDs of names that say what caused them: the same as
`uuid.UUID` makes of the same SHA-1 digest, for any name."""

from __future__ import annotations

import uuid
from hashlib import sha1

from hypothesis import given, settings
from hypothesis import strategies as st

from policies import ids


@settings(max_examples=500, deadline=None)
@given(st.text(st.characters(exclude_categories=("Cs",))))  # names are UTF-8 text: no lone surrogate
def test_ids_are_the_version_5_uuids_of_their_names(name):
    expected = uuid.UUID(bytes=sha1(ids._NAMESPACE + name.encode()).digest()[:16], version=5)
    assert ids._uuid5(name) == str(expected)


def test_known_ids_do_not_change():
    assert ids.settlement_id("320100", "nj-0010") == str(
        uuid.UUID(bytes=sha1(ids._NAMESPACE + b"settlement/320100/nj-0010").digest()[:16], version=5)
    )
    assert ids.movement_id("320100", "nj-0010", "M1", 0).count("-") == 4

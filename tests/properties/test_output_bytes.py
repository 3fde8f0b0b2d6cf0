"""The output lines are the bytes the standard library's compact JSON gives (`json.dumps(..., ensure_ascii=False,
separators=(",", ":"))`), whatever the text in them: the same input gives the same output, byte for byte, across
versions of medledger."""

from __future__ import annotations

import json
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from ledger.codec import _plain, dumps

scalars = (
    st.text()  # every code point but lone surrogates, which no decoded input can hold: control characters,
    # quotes, backslashes, U+2028, CJK, emoji
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.decimals(allow_nan=False, allow_infinity=False, places=2)
    | st.booleans()
    | st.none()
)
values = st.recursive(
    scalars,
    # integer keys are years in the outputs
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text() | st.integers(0, 9999), inner, max_size=4),
    max_leaves=20,
)


@given(st.dictionaries(st.text(), values, max_size=6))
def test_output_is_the_standard_librarys_compact_json(record):
    assert dumps(record) == json.dumps(record, ensure_ascii=False, separators=(",", ":"), default=_plain)


def test_known_awkward_text_is_escaped_as_the_standard_library_does():
    record = {"detail": 'a "quoted" \\ back\\slash\n\t\x00\x1f\x7f\u2028 医保 🏥', "amount": Decimal("-0.10"), 2024: 1}
    assert dumps(record) == json.dumps(record, ensure_ascii=False, separators=(",", ":"), default=_plain)
    assert dumps(record) == '{"detail":"a \\"quoted\\" \\\\ back\\\\slash\\n\\t\\u0000\\u001f\x7f\u2028 医保 🏥",' + (
        '"amount":"-0.10","2024":1}'
    )

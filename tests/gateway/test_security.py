"""The platform's signature: every refusal answered, logged and counted, and nothing written to the ledger."""

from __future__ import annotations

import asyncio
import logging
import time

import httpx
import pytest

from gateway.signature import sign
from tests.gateway.counter import NANJING_HOSPITAL, NINGXIA_HOSPITAL, enrol, enrolment, member_id
from tests.gateway.flow import Producer
from tests.gateway.his import His

NANJING = "320100"


def refusals(url: str, reason: str) -> float:
    text = httpx.get(f"{url}/metrics").text
    for line in text.splitlines():
        if line.startswith(f'medledger_gateway_refusals_total{{reason="{reason}"}}'):
            return float(line.split()[-1])
    return 0.0


async def attempt(stack, headers_of, body_of=None, expected_status: int = 401) -> dict:
    """A 1101 for an enrolled member, sent with the headers `headers_of(his)` give; the ledger's head is the same
    after it."""
    member = member_id(NANJING)
    await enrol(stack, enrolment(NANJING, member, "2023-01-01"))
    async with Producer(stack) as producer, httpx.AsyncClient(base_url=stack.gateway.url) as client:
        his = His(client, NANJING_HOSPITAL)
        body = his.envelope("1101", {"data": {"psn_no": member}}, NANJING)
        if body_of is not None:
            body = body_of(body)
        before = await producer.head()
        response = await his.post(body, headers_of(his))
        assert await producer.head() == before
    assert response.status_code == expected_status
    answer = response.json()
    assert answer["infcode"] == -1
    return answer


def headers_with(his: His, name: str, value: bytes, signed_stamp: str | None = None) -> dict:
    """The caller's headers with one value replaced by raw bytes (as a client may send them: HTTP takes any byte
    from 0x80 up); with `signed_stamp`, signed over that timestamp, as a caller holding the token can."""
    headers = his.headers()
    if signed_stamp is not None:
        headers["x-tif-signature"] = sign(signed_stamp, his.token, headers["x-tif-nonce"])
    return {**headers, name: value}


# case -> (the reason logged and counted, the headers sent)
CASES = {
    "signature_missing": (
        "signature_missing",
        lambda his: {k: v for k, v in his.headers().items() if k != "x-tif-signature"},
    ),
    "signature_invalid": ("signature_invalid", lambda his: his.headers(token="not-the-facility-token-at-all")),
    "timestamp_out_of_window": (
        "timestamp_out_of_window",
        lambda his: his.headers(timestamp=int(time.time()) - 301),
    ),
    "unknown_caller": ("unknown_caller", lambda his: {**his.headers(), "x-tif-paasid": "H00000000000"}),
    # Headers that made the check itself fail (HTTP 500): refused as any bad signature is.
    "non_ascii_signature": ("signature_invalid", lambda his: headers_with(his, "x-tif-signature", "é".encode() * 32)),
    "superscript_timestamp": (
        "timestamp_invalid",
        lambda his: headers_with(his, "x-tif-timestamp", b"\xb2", signed_stamp="\u00b2"),
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_message_without_a_valid_signature_is_refused_logged_counted_and_writes_nothing(case, stack, caplog):
    reason, headers_of = CASES[case]
    before = refusals(stack.gateway.url, reason)
    with caplog.at_level(logging.WARNING, logger="medledger.gateway"):
        answer = asyncio.run(attempt(stack, headers_of))
    # An unknown caller is told what a wrong signature is told: it learns nothing of who holds a key.
    assert answer["err_msg"].startswith("[signature_invalid]" if reason == "unknown_caller" else f"[{reason}]")
    assert {"inf_refmsgid", "refmsg_time", "respond_time", "output"} <= set(answer)
    assert refusals(stack.gateway.url, reason) == before + 1
    logged = [r for r in caplog.records if r.getMessage() == "message refused" and r.reason == reason]
    assert len(logged) == 1
    assert (logged[0].detail in answer["err_msg"]) == (reason != "unknown_caller")


def test_an_unknown_caller_is_answered_as_a_wrong_signature_is(stack):
    unknown = asyncio.run(attempt(stack, CASES["unknown_caller"][1]))
    wrong = asyncio.run(attempt(stack, CASES["signature_invalid"][1]))
    assert unknown["err_msg"] == wrong["err_msg"]


def test_a_timestamp_within_the_window_is_accepted(stack):
    async def run():
        member = member_id(NANJING)
        await enrol(stack, enrolment(NANJING, member, "2023-01-01"))
        async with httpx.AsyncClient(base_url=stack.gateway.url) as client:
            his = His(client, NANJING_HOSPITAL)
            body = his.envelope("1101", {"data": {"psn_no": member}}, NANJING)
            return await his.post(body, his.headers(timestamp=int(time.time()) - 290))

    assert asyncio.run(run()).json()["infcode"] == 0


def test_a_nonce_seen_before_is_refused(stack):
    async def run():
        member = member_id(NANJING)
        await enrol(stack, enrolment(NANJING, member, "2023-01-01"))
        async with httpx.AsyncClient(base_url=stack.gateway.url) as client:
            his = His(client, NANJING_HOSPITAL)
            headers = his.headers(nonce="nonce-used-twice")
            first = await his.post(his.envelope("1101", {"data": {"psn_no": member}}, NANJING), headers)
            again = await his.post(his.envelope("1101", {"data": {"psn_no": member}}, NANJING), headers)
            return first, again

    before = refusals(stack.gateway.url, "nonce_replayed")
    first, again = asyncio.run(run())
    assert first.json()["infcode"] == 0
    assert again.status_code == 401 and again.json()["err_msg"].startswith("[nonce_replayed]")
    assert refusals(stack.gateway.url, "nonce_replayed") == before + 1


def test_an_envelope_of_another_facility_is_refused(stack):
    def as_another(body: dict) -> dict:
        return {**body, "fixmedins_code": NINGXIA_HOSPITAL}

    answer = asyncio.run(attempt(stack, lambda his: his.headers(), as_another, expected_status=200))
    assert answer["err_msg"].startswith("[caller_mismatch]") and "fixmedins_code" in answer["err_msg"]


def test_any_failure_of_the_signature_check_is_a_counted_signature_refusal_not_a_server_error(stack, monkeypatch):
    def failing(headers):
        raise UnicodeError("a header the check did not foresee")

    monkeypatch.setattr(stack.gateway.gateway.signatures, "caller", failing)
    before = refusals(stack.gateway.url, "signature_invalid")
    answer = asyncio.run(attempt(stack, lambda his: his.headers()))
    assert answer["err_msg"].startswith("[signature_invalid]")
    assert refusals(stack.gateway.url, "signature_invalid") == before + 1


@pytest.mark.parametrize("token", ["example-token-nanjing-0011-change-me", "change-me-too-change-me"])
def test_a_keys_file_with_an_example_or_default_token_is_refused(token):
    from gateway.signature import parse_keys

    with pytest.raises(ValueError, match="an example's or a known default"):
        parse_keys(f'[facilities."H32010200011"]\ntoken = "{token}"\n')


def test_the_example_keys_file_is_refused_as_a_deployments_own():
    from pathlib import Path

    from gateway.signature import parse_keys

    example = Path(__file__).resolve().parents[2] / "examples/national/keys.example.toml"
    with pytest.raises(ValueError, match="known default"):
        parse_keys(example.read_text())

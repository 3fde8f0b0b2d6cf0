"""A replay holds its member states in memory between batches (`ledger.db.held_members`) and writes them to its
member_state table only when the table is read: the member_year rows, the comparison, and, once some were let go,
a year close."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import date
from decimal import Decimal

import pytest

from ledger.codec import state_from_bytes, state_json
from ledger.db import audit, held_members, projection_store
from ledger.db.held_members import HeldMembers
from ledger.db.server import maintenance
from ledger.replay import Replayer
from policies.book import Book
from policies.member import MemberState, Status
from tests.ledger.helpers import example_lines, execute, fetch, ingest, verify
from tests.ledger.test_replay import _mixed, _snapshot


def _member(member_id: str, balance: str = "0.00") -> MemberState:
    return MemberState(
        region="370000",
        member_id=member_id,
        birth_date=date(1970, 1, 1),
        enrolled_on=date(2023, 1, 1),
        statuses=[Status(date(2023, 1, 1), "employee", "employee_active")],
        balance=Decimal(balance),
    )


def _kept(held: HeldMembers, *members: MemberState, seq: int = 1, digest: str = "d1") -> list[tuple]:
    return held.keep((((m.region, m.member_id), m, seq) for m in members), digest)


def test_held_states_are_taken_as_kept_and_written_once_as_the_table_keeps_them():
    held = HeldMembers(most=10)
    a, b = _member("A", "1.00"), _member("B", "2.00")
    assert _kept(held, a, b, seq=7) == []
    book, loaded = Book(), {}
    # A member not held has no state yet while nothing was let go: nothing is left to read from the table.
    assert held.take(book, [("370000", "A"), ("370000", "C")], loaded) == set()
    assert book.members == {("370000", "A"): a} and loaded == {("370000", "A"): "d1"}
    assert held.get(("370000", "B")) == (b, "d1") and held.get(("370000", "C")) is None
    rows = held.to_write()
    assert rows == [
        ("370000", "A", state_json(a).decode(), 7, "d1"),
        ("370000", "B", state_json(b).decode(), 7, "d1"),
    ]
    assert state_from_bytes(rows[0][2]) == a
    assert held.to_write() == [] and len(held) == 2  # written, and still held


def test_past_its_bound_the_least_recently_kept_go_and_only_those_not_yet_written_are_returned():
    held = HeldMembers(most=2)
    a, b, c, d = (_member(name) for name in "ABCD")
    _kept(held, a, b)
    held.to_write()  # A and B are in the table now
    _kept(held, replace(a, balance=Decimal("5.00")), seq=2)  # A kept again: B is now the least recent
    assert _kept(held, c, seq=3) == []  # B goes, and it is in the table already
    assert held.complete is False and len(held) == 2
    let_go = _kept(held, d, seq=4)  # A goes, changed since written: its row must be written now
    assert [(row[1], row[3]) for row in let_go] == [("A", 2)]
    assert state_from_bytes(let_go[0][2]).balance == Decimal("5.00")
    # Once some went, a member not held may be in the table: it is left to read there.
    assert held.take(Book(), [("370000", "A"), ("370000", "D")]) == {("370000", "A")}
    assert [row[1] for row in held.to_write()] == ["C", "D"]


def test_holding_none_writes_every_state_with_its_batch():
    held = HeldMembers(most=0)
    a = _member("A")
    assert [row[1] for row in _kept(held, a)] == ["A"]
    assert len(held) == 0 and held.unwritten == 0 and held.to_write() == []
    with pytest.raises(ValueError, match="fewer than none"):
        HeldMembers(most=-1)


def test_a_verify_writes_the_member_states_once_after_the_walk(database, monkeypatch):
    """The shadow member_state stays empty while the batches are settled, year closes among them (evaluated from
    the held states), and no member is looked up in it; it holds every member once member_year has been written
    (from the held states: none was let go)."""
    lines = example_lines("ningxia", "weihai", "nanjing")
    assert sum("period.year_closed" in line for line in lines) == 4
    ingest(database, lines, batch_size=13)
    members = fetch(database, "SELECT count(*) FROM member_state")[0][0]
    seen: list[tuple[str, int]] = []
    write_replayed, write_member_years = audit.PostgresAudit.write_replayed, audit.PostgresAudit.write_member_years

    async def counted(self, when: str) -> None:
        seen.append((when, await self.raw.fetchval(f"SELECT count(*) FROM {self.names.member_state}")))

    async def replayed(self, *args):
        await write_replayed(self, *args)
        await counted(self, "batch")

    async def years(self, registry_of):
        await counted(self, "before")
        await write_member_years(self, registry_of)
        await counted(self, "after")

    looked_up: list[int] = []
    book_lookups, load_members = projection_store.book_lookups, projection_store.load_members

    def lookups(names, visit_keys, members, *args, **kwargs):
        looked_up.append(len(members))
        return book_lookups(names, visit_keys, members, *args, **kwargs)

    async def payers(raw, names, book, keys, loaded=None):
        keys = list(keys)
        looked_up.append(len(keys))
        await load_members(raw, names, book, keys, loaded)

    monkeypatch.setattr(audit.PostgresAudit, "write_replayed", replayed)
    monkeypatch.setattr(audit.PostgresAudit, "write_member_years", years)
    monkeypatch.setattr(projection_store, "book_lookups", lookups)
    monkeypatch.setattr(projection_store, "load_members", payers)
    monkeypatch.setattr(projection_store, "write_member_years", None)  # not read back from the table either
    monkeypatch.setattr(audit, "region_member_chunks", None)  # nor by a year close
    report = verify(database, batch_size=7)
    assert report.ok, (report.differences[:5], report.projection_differences)
    batches = [count for when, count in seen if when == "batch"]
    assert len(batches) > 10 and set(batches) == {0}
    assert [entry for entry in seen if entry[0] != "batch"] == [("before", 0), ("after", members)]
    assert len(looked_up) > 10 and set(looked_up) == {0}


@pytest.mark.parametrize("most", [0, 3, 40, 10_000])
def test_verify_and_rebuild_agree_whatever_few_members_are_held(database, monkeypatch, most):
    """Year closes, reversals paid back to a family's payer, parked events and a change of parameters, with
    members let go and read back from the table in between (all of them, some, many), or none let go."""
    monkeypatch.setenv(held_members.SETTING, str(most))
    assert HeldMembers().most == most
    _mixed(database)
    members = fetch(database, "SELECT count(*) FROM member_state")[0][0]
    assert 40 < members < 10_000
    ended: list[bool] = []
    write_member_years = audit.PostgresAudit.write_member_years

    async def years(self, registry_of):
        ended.append(self.holding.complete)
        await write_member_years(self, registry_of)

    monkeypatch.setattr(audit.PostgresAudit, "write_member_years", years)
    before = _snapshot(database)
    report = verify(database, batch_size=57)
    assert report.ok, (report.chain_breaks, report.differences[:5], report.projection_differences)
    asyncio.run(Replayer(maintenance(database), batch_size=61).rebuild())
    assert _snapshot(database) == before
    assert ended == [most >= members] * 2
    # a member's state changed behind the ledger's back is found, whoever was held
    execute(
        database,
        "UPDATE member_state SET state = jsonb_set(state, '{balance}', '\"12345.67\"') "
        "WHERE (region, member_id) = (SELECT region, member_id FROM member_state ORDER BY 1, 2 LIMIT 1)",
    )
    report = verify(database, batch_size=57)
    assert report.projection_differences["member_state"] == 2


def test_the_setting_is_a_whole_number_of_members(monkeypatch):
    monkeypatch.delenv(held_members.SETTING, raising=False)
    assert held_members.held_setting() == held_members.HELD_MEMBERS
    for given in ("-1", "many", "1.5"):
        monkeypatch.setenv(held_members.SETTING, given)
        with pytest.raises(ValueError, match=f"MEDLEDGER_REPLAY_MEMBERS must be a whole number.*{given}"):
            held_members.held_setting()

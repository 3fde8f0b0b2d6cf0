"""The reference data the national platform holds, as files: the designated facilities and the charge-item
catalogue. Every row is checked when the file is read; a file with a bad row is refused whole (`Reloading` keeps
the version before it)."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from ledger.contract.visit import FacilityKind, ItemCategory

FACILITY_COLUMNS = ("fixmedins_code", "fixmedins_name", "admdvs", "level", "grade", "kind", "designated")
CATALOGUE_COLUMNS = (
    "med_list_codg",
    "med_list_name",
    "med_chrgitm_type",
    "category",
    "chrgitm_lv",
    "selfpay_prop",
    "pric_uplmt_amt",
)
# 收费项目等级: 甲类, 乙类, 丙类 (wholly outside the catalogue)
CLASS_A, CLASS_B, CLASS_C = "01", "02", "03"


@dataclass(frozen=True)
class Facility:
    code: str
    name: str
    admdvs: str  # the division (region code) the facility is in
    level: int  # 0 = below tier 1 (village), 1-3
    grade: str | None  # A, B or none
    kind: str  # the contract's facility_kind
    designated: bool  # 定点


@dataclass(frozen=True)
class CatalogueEntry:
    code: str
    name: str
    charge_type: str  # the national med_chrgitm_type code
    category: str  # the contract's item category
    item_class: str  # chrgitm_lv: 01 甲, 02 乙, 03 丙
    selfpay_prop: Decimal  # the 乙 item's self-pay proportion (先行自付比例)
    price_cap: Decimal | None  # pric_uplmt_amt: above it, the excess is outside the catalogue


class ReferenceError(ValueError):
    pass


def _rows(text: str, columns: tuple[str, ...], what: str) -> list[tuple[int, dict[str, str]]]:
    reader = csv.DictReader(io.StringIO(text))
    if tuple(reader.fieldnames or ()) != columns:
        raise ReferenceError(f"{what}: the header must be {','.join(columns)}, got {','.join(reader.fieldnames or [])}")
    rows = []
    for number, row in enumerate(reader, start=2):
        if None in row or any(value is None for value in row.values()):
            raise ReferenceError(f"{what} line {number}: expected {len(columns)} columns")
        rows.append((number, {key: value.strip() for key, value in row.items()}))
    return rows


def _decimal(value: str, where: str) -> Decimal:
    try:
        number = Decimal(value)
    except InvalidOperation:
        raise ReferenceError(f"{where}: {value!r} is not a number") from None
    if not number.is_finite() or number < 0:
        raise ReferenceError(f"{where}: {value!r} must be a non-negative number")
    return number


def parse_facilities(text: str) -> dict[str, Facility]:
    kinds = {kind.value for kind in FacilityKind}
    found: dict[str, Facility] = {}
    for number, row in _rows(text, FACILITY_COLUMNS, "facilities.csv"):
        where = f"facilities.csv line {number}"
        code = row["fixmedins_code"]
        if not code or code in found:
            raise ReferenceError(f"{where}: fixmedins_code {code!r} is empty or given twice")
        if row["level"] not in {"0", "1", "2", "3"}:
            raise ReferenceError(f"{where}: level must be 0-3, got {row['level']!r}")
        if row["grade"] not in {"", "A", "B"}:
            raise ReferenceError(f"{where}: grade must be A, B or empty, got {row['grade']!r}")
        if row["kind"] not in kinds:
            raise ReferenceError(f"{where}: kind {row['kind']!r} is not one of {', '.join(sorted(kinds))}")
        if row["designated"] not in {"0", "1"}:
            raise ReferenceError(f"{where}: designated must be 1 or 0, got {row['designated']!r}")
        if not row["admdvs"]:
            raise ReferenceError(f"{where}: admdvs is empty")
        found[code] = Facility(
            code,
            row["fixmedins_name"],
            row["admdvs"],
            int(row["level"]),
            row["grade"] or None,
            row["kind"],
            row["designated"] == "1",
        )
    return found


def parse_catalogue(text: str) -> dict[str, CatalogueEntry]:
    categories = {category.value for category in ItemCategory}
    found: dict[str, CatalogueEntry] = {}
    for number, row in _rows(text, CATALOGUE_COLUMNS, "catalogue.csv"):
        where = f"catalogue.csv line {number}"
        code = row["med_list_codg"]
        if not code or code in found:
            raise ReferenceError(f"{where}: med_list_codg {code!r} is empty or given twice")
        if row["category"] not in categories:
            raise ReferenceError(f"{where}: category {row['category']!r} is not one of {', '.join(sorted(categories))}")
        if row["chrgitm_lv"] not in {CLASS_A, CLASS_B, CLASS_C}:
            raise ReferenceError(f"{where}: chrgitm_lv must be 01, 02 or 03, got {row['chrgitm_lv']!r}")
        if not row["med_chrgitm_type"]:
            raise ReferenceError(f"{where}: med_chrgitm_type is empty")
        prop = _decimal(row["selfpay_prop"] or "0", f"{where} selfpay_prop")
        if prop > 1:
            raise ReferenceError(f"{where}: selfpay_prop {prop} is above 1")
        cap = _decimal(row["pric_uplmt_amt"], f"{where} pric_uplmt_amt") if row["pric_uplmt_amt"] else None
        found[code] = CatalogueEntry(
            code, row["med_list_name"], row["med_chrgitm_type"], row["category"], row["chrgitm_lv"], prop, cap
        )
    return found

"""The explanation lines of settlements, movements and year closes: one template table, two languages.

A rule says what it did as a code and values (`explain("deductible", ...)`); the English line the ledger records
is the English template filled with those values, the Chinese one the Chinese template filled with the same.
A line recorded before it had a template, or by a rule without one, is read back as it is (`read` returns None).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from keyword import iskeyword
from string import Formatter
from typing import Any


@dataclass(frozen=True, slots=True)
class Template:
    code: str
    en: str
    zh: str


# `read` takes, of the templates a recorded line matches whole, the one whose own words cover most of it.
TEMPLATES = (
    # -- every region: the member, the facility, the bill (policies/settling.py) ----------------------------------
    Template(
        "member.retired_since",
        "{policy_id} ({document}): {insurance_type} {person_type} (retired from the month after retirement)",
        "{policy_id}（{document}）：{insurance_type}{person_type}（自退休次月起按退休人员待遇）",
    ),
    Template(
        "member",
        "{policy_id} ({document}): {insurance_type} {person_type}",
        "{policy_id}（{document}）：{insurance_type}{person_type}",
    ),
    Template(
        "chronic.not_certified",
        "policy notes §0: not certified for {disease_code} on {day}; settled as general outpatient",
        "政策说明 §0：{day} 未认定 {disease_code} 门诊慢特病，按普通门诊结算",
    ),
    Template(
        "pharmacy.prescription",
        "002 第二十三条, 000 第二十八条: external prescription from a {facility}, settled at the prescriber's rates",
        "002 第二十三条, 000 第二十八条：{facility}开具的外配处方，按处方机构的标准结算",
    ),
    Template(
        "bill.excluded",
        "000 第十二条: {amount} of health check-up / public health lines is not fund-payable",
        "000 第十二条：健康体检、公共卫生项目 {amount} 不属于基金支付范围",
    ),
    Template(
        "exclusion.not_designated",
        "000 第十二条, policy notes §0: not a designated (定点) facility, no fund payment",
        "000 第十二条, 政策说明 §0：非定点医药机构，基金不予支付",
    ),
    Template(
        "exclusion.inpatient",
        "000 第十二条, 第二十一条: outpatient costs during an inpatient stay are not fund-payable",
        "000 第十二条, 第二十一条：住院期间发生的门诊费用基金不予支付",
    ),
    Template(
        "exclusion.pharmacy_without_prescription",
        "002 第二十三条: a pharmacy purchase without an external prescription is not fund-payable",
        "002 第二十三条：无外配处方的药店购药基金不予支付",
    ),
    # -- every region: the personal account (个人账户) and family mutual aid (家庭共济) ------------------------------
    Template(
        "family.paid_from",
        "{article}: family mutual aid (家庭共济), paid from {payer_id}'s account ({relation})",
        "{article}：家庭共济，由 {payer_id} 的个人账户支付（{relation}）",
    ),
    Template(
        "account.not_designated",
        "{article}: the personal account pays only at designated facilities; the member share is cash",
        "{article}：个人账户仅在定点医药机构支付；个人负担部分以现金支付",
    ),
    Template(
        "account.closed",
        "policy notes §5: the account of {payer_id} is closed; the member share is cash",
        "政策说明 §5：{payer_id} 的个人账户已注销；个人负担部分以现金支付",
    ),
    Template(
        "account.pays",
        "{article}: the personal account pays {paid} of the member share {share} (balance {balance})",
        "{article}：个人账户支付 {paid}（个人负担 {share}，账户余额 {balance}）",
    ),
    Template(
        "account.visit_payment",
        "{article}: member share of visit {visit_id} paid from the personal account",
        "{article}：就诊 {visit_id} 的个人负担部分由个人账户支付",
    ),
    Template(
        "account.allowed_use",
        "policy notes §5: {purpose} is an allowed use in {policy_id}",
        "政策说明 §5：{purpose}属于 {policy_id} 个人账户的使用范围",
    ),
    Template(
        "family.authorised",
        "{article}: family mutual aid for {beneficiary} ({relation}), authorised by the account holder",
        "{article}：为 {beneficiary}（{relation}）家庭共济，已经账户持有人授权",
    ),
    # -- reversals (退费) ---------------------------------------------------------------------------------------------
    Template(
        "reversal.of",
        "policy notes §0: reversal (退费) of settlement {settlement_id}: {reason}",
        "政策说明 §0：结算 {settlement_id} 的退费：{reason}",
    ),
    Template(
        "reversal.exact",
        "policy notes §0: returns exactly what the settlement consumed",
        "政策说明 §0：原样退回该笔结算所占用的额度",
    ),
    Template(
        "reversal.account_closed",
        "policy notes §5: the account of {payer_id} is closed; the refund is paid in cash",
        "政策说明 §5：{payer_id} 的个人账户已注销；退款以现金支付",
    ),
    Template(
        "reversal.refund",
        "policy notes §0: refund of visit {visit_id} to the account that paid",
        "政策说明 §0：就诊 {visit_id} 的退款退回原支付账户",
    ),
    # -- the general outpatient pool (普通门诊统筹): deductible, ratio, limits
    Template(
        "deductible.tier",
        "{article}: tier-{level} deductible {threshold}, {paid} already paid this year → deductible {deductible}",
        "{article}：{level}级医疗机构起付线 {threshold}，本年已付 {paid} → 本次起付 {deductible}",
    ),
    Template(
        "deductible",
        "{article}: deductible {threshold}, {paid} already paid this year → deductible {deductible}",
        "{article}：起付线 {threshold}，本年已付 {paid} → 本次起付 {deductible}",
    ),
    Template(
        "limit.base",
        "{article}: limit {limit} on the eligible expense above it, {used} used → base {base}",
        "{article}：起付线以上政策范围内费用最高支付限额 {limit}，已用 {used} → 本次计算基数 {base}",
    ),
    Template(
        "ratio.fund",
        "{article}: ratio {ratio} on {base} → fund {fund}",
        "{article}：{base} × 支付比例 {ratio} → 统筹基金支付 {fund}",
    ),
    Template(
        "ratio.tier",
        "{article}: {category} ratio {ratio} at tier {tier} on {base} → {fund}",
        "{article}：{category}在{tier}级医疗机构支付比例 {ratio}，{base} → {fund}",
    ),
    Template(
        "cap.fund",
        "{article}: annual general outpatient fund cap {cap}, {used} used → fund {fund}, over the cap {over}",
        "{article}：普通门诊统筹年度最高支付限额 {cap}，已用 {used} → 统筹基金支付 {fund}，超限额 {over}",
    ),
    # Nanjing's bands (002 第十四条, 第十五条) and health streak (002 第七条)
    Template(
        "bands.community",
        "002 第十四条: {category} at a community facility, no deductible; band position {position}",
        "002 第十四条：{category}在社区医疗机构就医，不设起付线；分段累计位置 {position}",
    ),
    Template(
        "bands.other",
        "002 第十四条: {category} at a non-community facility, no deductible; band position {position}",
        "002 第十四条：{category}在非社区医疗机构就医，不设起付线；分段累计位置 {position}",
    ),
    Template(
        "bands.above",
        "002 第十四条: {piece} above {bound} is not fund-payable",
        "002 第十四条：超过 {bound} 的部分 {piece} 统筹基金不予支付",
    ),
    Template(
        "bands.band",
        "002 第十四条: band {band}, {piece} at {ratio} = {fund}",
        "002 第十四条：第 {band} 段 {piece} × {ratio} = {fund}",
    ),
    Template(
        "bands.fees",
        "002 第十五条: consultation/diagnosis/nucleic-acid fees {fee} at the first-band {ratio}, outside the bands",
        "002 第十五条：诊察费、一般诊疗费、核酸检测费 {fee} 按第一段比例 {ratio} 支付，不计入分段",
    ),
    Template(
        "streak.ends",
        "002 第七条: pooled fund paid {paid} in {year}; the streak ends",
        "002 第七条：{year} 年统筹基金支付 {paid}，连续激励中断",
    ),
    Template(
        "streak.not_enrolled",
        "policy notes §0: not enrolled the whole of {year}",
        "政策说明 §0：{year} 年未全年参保",
    ),
    Template(
        "streak.credit",
        "002 第七条: no pooled-fund payment in {year}, {streak} year(s) running → credit {amount}",
        "002 第七条：{year} 年未发生统筹基金支付，连续 {streak} 年 → 划入 {amount}",
    ),
    # Weihai (001): general outpatient, the ratio bonus, chronic diseases
    Template(
        "general.tier.segment",
        "001 第十一条: {category}, general outpatient at tier {level}, counters restarted by the insurance-type "
        "change (segment {segment})",
        "001 第十一条：{category}，{level}级医疗机构普通门诊，险种变更后累计重新计算（第 {segment} 段）",
    ),
    Template(
        "general.tier",
        "001 第十一条: {category}, general outpatient at tier {level}",
        "001 第十一条：{category}，{level}级医疗机构普通门诊",
    ),
    Template(
        "exclusion.not_registered",
        "001 第二十八条: not one of the member's registered facilities, no fund payment",
        "001 第二十八条：非本人选定的定点医疗机构，基金不予支付",
    ),
    Template(
        "tcm.employee",
        "001 第十八条: TCM hospital, employee deductible and ratio of tier {tier}",
        "001 第十八条：中医医院，职工按{tier}级医疗机构的起付线和支付比例",
    ),
    Template(
        "tcm.resident",
        "001 第十八条: TCM hospital, resident deductible of tier {tier}, ratio +5 points",
        "001 第十八条：中医医院，居民按{tier}级医疗机构的起付线，支付比例提高 5 个百分点",
    ),
    Template(
        "out_of_area.first_share",
        "001 第十九条: temporary out-of-area, the member first pays {share} = {first}, counted toward the limit",
        "001 第十九条：临时外出就医，个人先行自付 {share} = {first}，计入限额",
    ),
    Template(
        "bonus.applied",
        "001 第十二条: incentive bonus +{bonus} points",
        "001 第十二条：激励支付比例 +{bonus} 个百分点",
    ),
    Template(
        "bonus.reset",
        "001 第十二条: {why} while holding the bonus resets it; {year} earns nothing",
        "001 第十二条：享受激励期间{why}，激励清零；{year} 年不再累积",
    ),
    Template(
        "bonus.not_enrolled",
        "policy notes §0: not enrolled the whole of {year}, earns nothing",
        "政策说明 §0：{year} 年未全年参保，不累积激励",
    ),
    Template(
        "bonus.close",
        "001 第十二条: {year}: {why} → +{earned} points, bonus {after} (at most {most})",
        "001 第十二条：{year} 年：{why} → +{earned} 个百分点，激励 {after}（最高 {most}）",
    ),
    Template(
        "chronic.employee",
        "001 第十四条: employee chronic, deductible {threshold}, inpatient ratio; 001 第十六条: pool of {caps} "
        "certified cap(s) shared across diseases",
        "001 第十四条：职工门诊慢特病，起付线 {threshold}，按住院比例支付；001 第十六条：{caps} 个认定病种限额合并使用",
    ),
    Template(
        "chronic.special",
        "001 第十四条: resident special chronic, deductible {threshold}, inpatient ratio",
        "001 第十四条：居民门诊特殊慢性病，起付线 {threshold}，按住院比例支付",
    ),
    Template(
        "chronic.common",
        "001 第十四条, 第十五条: resident common chronic, deductible {threshold}, ratio {ratio}, limit {limit}",
        "001 第十四条, 第十五条：居民门诊普通慢性病，起付线 {threshold}，支付比例 {ratio}，限额 {limit}",
    ),
    # Ningxia (000, 003): exclusions, internet hospitals, chronic diseases
    Template(
        "exclusion.village_clinic",
        "000 第十条: general outpatient is covered from tier 1 up; a village clinic is not",
        "000 第十条：普通门诊统筹限一级及以上医疗机构，村卫生室不予支付",
    ),
    Template(
        "exclusion.temporary_out_of_area",
        "000 第二十七条: a temporary out-of-area visit gets no general outpatient fund payment",
        "000 第二十七条：临时外出就医的普通门诊费用统筹基金不予支付",
    ),
    Template(
        "internet_hospital",
        "003 一(一): an internet hospital is reimbursed at its hospital's tier and grade",
        "003 一(一)：互联网医院按其依托医院的级别报销",
    ),
    Template(
        "exclusion.village_chronic",
        "003 一(一): a chronic visit at a village clinic is payable only for 两病 under the remote pilot",
        "003 一(一)：村卫生室的门诊慢特病费用仅限偏远地区试点的“两病”患者报销",
    ),
    Template(
        "exclusion.chronic_tier",
        "000 第十四条: chronic visits are covered from tier 1 up",
        "000 第十四条：门诊慢特病限一级及以上医疗机构",
    ),
    Template(
        "chronic.remote_pilot",
        "003 一(一): 两病 chronic visit at a village clinic under the remote pilot",
        "003 一(一)：偏远地区试点，村卫生室“两病”门诊慢特病",
    ),
    Template(
        "chronic.shared_deductible",
        "000 第十七条: chronic deductible {threshold} on the counter shared with general outpatient, {paid} already "
        "paid → deductible {deductible}",
        "000 第十七条：门诊慢特病起付线 {threshold}，与普通门诊合并计算，已付 {paid} → 本次起付 {deductible}",
    ),
    Template(
        "chronic.ratio",
        "000 第十七条: chronic ratio {ratio} on {base} → {fund}",
        "000 第十七条：门诊慢特病支付比例 {ratio}，{base} → {fund}",
    ),
    Template(
        "chronic.pool",
        "000 第十九条: chronic pool {pool} from caps {caps}, {used} used → room {room}",
        "000 第十九条：门诊慢特病额度 {pool}（病种限额 {caps}），已用 {used} → 剩余 {room}",
    ),
    Template(
        "chronic.pool_exhausted",
        "000 第十九条: pool exhausted → fund {fund}, over the pool {over}",
        "000 第十九条：额度用尽 → 统筹基金支付 {fund}，超出额度 {over}",
    ),
    # Inner Mongolia (004) and the configured outpatient tables it delegates (004 一(一))
    Template(
        "configured.table",
        "outpatient table: {source}",
        "门诊待遇参数表：{source}",
    ),
    Template(
        "inpatient_cap.counted",
        "004 一(三): outpatient fund paid this year counts toward the inpatient annual cap: {counted}",
        "004 一(三)：本年门诊统筹支付计入住院年度最高支付限额：{counted}",
    ),
    Template(
        "configured.deductible",
        "{article}: configured tier-{tier} deductible {threshold}, {paid} already paid → deductible {deductible}",
        "{article}：参数配置 {tier}级医疗机构起付线 {threshold}，已付 {paid} → 本次起付 {deductible}",
    ),
    Template(
        "configured.ratio",
        "{article}: configured {category} ratio {ratio} on {base} → {uncapped}; annual fund cap {cap}, {used} used "
        "→ fund {fund}",
        "{article}：参数配置{category}支付比例 {ratio}，{base} → {uncapped}；年度最高支付限额 {cap}，已用 {used} "
        "→ 统筹基金支付 {fund}",
    ),
    Template(
        "configured.chronic_deductible",
        "{article}: configured chronic deductible {threshold}, {paid} already paid → deductible {deductible}",
        "{article}：参数配置门诊慢特病起付线 {threshold}，已付 {paid} → 本次起付 {deductible}",
    ),
    Template(
        "configured.chronic_ratio",
        "{article}: configured chronic ratio {ratio} on {base} → {uncapped}; pool {pool} of certified caps, {used} "
        "used → fund {fund}",
        "{article}：参数配置门诊慢特病支付比例 {ratio}，{base} → {uncapped}；认定病种限额合计 {pool}，已用 {used} "
        "→ 统筹基金支付 {fund}",
    ),
)
BY_CODE = {template.code: template for template in TEMPLATES}

# Words the English lines use as values, in the bureaus' terms.
WORDS_ZH = {
    "employee": "职工",
    "resident": "居民",
    "in service": "在职",
    "in-service": "在职",
    "no general outpatient fund payment": "未发生普通门诊统筹支付",
    "retired": "退休",
    "retired 70": "70岁以上退休",  # 002 第十八条: the retired of 70 and over (Nanjing)
    "flexible": "灵活就业",
    "veteran pre1949": "离休",
    "resident tier1": "一档居民",
    "resident tier2": "二档居民",
    "resident minor": "未成年居民",
    "spouse": "配偶",
    "parent": "父母",
    "child": "子女",
    "spouse_parent": "配偶父母",
    "grandparent": "祖父母",
    "grandchild": "孙子女",
    "sibling": "兄弟姐妹",
    "family resident premium": "家庭成员居民医保缴费",
    "ltc premium": "长期护理保险缴费",
    "supplementary insurance": "补充医疗保险",
    "large amount premium": "大额医疗保险缴费",
    "health checkup": "健康体检",
    "vaccine": "预防接种",
    "family doctor fee": "家庭医生签约服务费",
    "public health": "公共卫生服务",
    "fitness": "健身",
    "own medical": "本人就医",
    "family medical": "家庭成员就医",
    "general hospital": "综合医院",
    "tcm hospital": "中医医院",
    "community health center": "社区卫生服务中心",
    "township health center": "乡镇卫生院",
    "village clinic": "村卫生室",
    "retail pharmacy": "零售药店",
    "internet hospital": "互联网医院",
}


def _writers(text: str) -> tuple[Callable[[dict[str, object]], str], Callable[..., str]]:
    """`text.format_map`, written out once as an f-string of the template's fields, each taken as its str(): what
    format() makes of every value a rule gives (a Decimal, an int, a date, a string or a string enum) with no format
    spec, made without Decimal's format-spec machinery. Two functions of the one f-string: one reads the values
    from a dict (`explain`), the other takes them as keyword arguments (`writer`: no dict is built for a line).
    A template with a spec or conversion keeps format_map."""

    def format_keywords(**values: object) -> str:
        return text.format_map(values)

    pieces, keyword_pieces, names = [], [], []
    for literal, name, spec, conversion in Formatter().parse(text):
        pieces.append(literal.replace("{", "{{").replace("}", "}}"))
        keyword_pieces.append(pieces[-1])
        if name is None:
            continue
        if spec or conversion or not name.isidentifier() or iskeyword(name):
            return text.format_map, format_keywords
        pieces.append(f"{{v[{name!r}]!s}}")
        keyword_pieces.append(f"{{{name}!s}}")
        if name not in names:
            names.append(name)
    source, keyword_source = "".join(pieces), "".join(keyword_pieces)
    if '"""' in source or source.endswith('"') or "\\" in source:
        return text.format_map, format_keywords
    parameters = f"*, {', '.join(names)}" if names else ""
    scope: dict[str, Any] = {}
    exec(  # noqa: S102 - from the template table above
        f'def write(v):\n    return f"""{source}"""\n'
        f'def write_keywords({parameters}):\n    return f"""{keyword_source}"""\n',
        scope,
    )
    return scope["write"], scope["write_keywords"]


_WRITERS = {template.code: _writers(template.en) for template in TEMPLATES}
_ENGLISH = {code: writers[0] for code, writers in _WRITERS.items()}


def explain(code: str, **values: object) -> str:
    """The English line of rule `code` with `values`: the text the ledger records."""
    return _ENGLISH[code](values)


def writer(code: str) -> Callable[..., str]:
    """`explain` of rule `code` as a function of the values alone, given as keywords, each required: taken once
    by a rule that writes the line for every visit (no table lookup, no dict of the values built per line)."""
    return _WRITERS[code][1]


_ONCE: dict[tuple[str, ...], str] = {}


def explain_once(code: str, *values: str, names: tuple[str, ...]) -> str:
    """`explain` for a line whose values are all text from a small set (a policy, its document and article, the
    member's kind), given in the order of `names`: each distinct line is formatted once and handed out again. Text
    only: values that are equal but written differently (Decimal 1.0 and 1.00) would share one line."""
    key = (code, *values)
    line = _ONCE.get(key)
    if line is None:
        line = _ONCE[key] = _ENGLISH[code](dict(zip(names, values, strict=True)))
    return line


_FIELD = re.compile(r"\{(\w+)\}")


@cache
def _pattern(template: Template) -> re.Pattern:
    pieces, last = [], 0
    for found in _FIELD.finditer(template.en):
        pieces.append(re.escape(template.en[last : found.start()]))
        pieces.append(f"(?P<{found.group(1)}>.+?)")
        last = found.end()
    pieces.append(re.escape(template.en[last:]))
    return re.compile("".join(pieces), re.DOTALL)


def read(line: str) -> tuple[str, dict[str, str]] | None:
    """The code and values of a recorded English line; None for a line no template gives. Where several
    templates give the line, the one whose own words cover most of it (the most specific)."""
    best: tuple[int, str, dict[str, str]] | None = None
    for template in TEMPLATES:
        found = _pattern(template).fullmatch(line)
        if found is not None:
            values = found.groupdict()
            words = len(line) - sum(len(value) for value in values.values())
            if template.en.format(**values) == line and (best is None or words > best[0]):
                best = (words, template.code, values)
    return None if best is None else (best[1], best[2])


def _zh_value(value: str) -> str:
    value = value.replace("policy notes", "政策说明")
    if value in WORDS_ZH:
        return WORDS_ZH[value]
    for tier in ("tier ", "tier-"):
        if value.startswith(tier):
            return value
    # a facility as `Facility.describe` gives it: "general hospital tier 3A"
    for word, zh in WORDS_ZH.items():
        if value.startswith(word + " tier "):
            return zh + value[len(word) :].replace(" tier ", " ") + "级"
    return value


def render(line: str, language: str) -> str:
    """A recorded line in `language` ("en" as recorded, "zh" from its template; as recorded when it has none)."""
    if language == "en":
        return line
    found = read(line)
    if found is None:
        return line
    code, values = found
    return BY_CODE[code].zh.format(**{name: _zh_value(value) for name, value in values.items()})

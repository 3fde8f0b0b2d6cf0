"""The settlement's explanation as a HIS prints it on the patient's receipt (结算过程信息): each line in Chinese,
its article citations kept as they are.

The ledger writes its explanation lines in English around the articles they cite. Each phrase medledger writes is
rendered here; the figures, codes and citations pass through unchanged. A phrase not (yet) rendered stays in
English rather than be lost, so the receipt never says less than the ledger."""

from __future__ import annotations

import re
from collections.abc import Iterable

# (pattern, rendering), applied in order to each line. Patterns match the phrases `policies/` writes.
PHRASES: tuple[tuple[str, str], ...] = (
    # who the member is (the first line: policy, document, insurance and person type)
    (r"\s*\(retired from the month after retirement\)", "（退休次月起按退休人员待遇）"),
    (r": employee in service\b", "：职工在职"),
    (r": employee retired\b", "：职工退休"),
    (r": employee flexible\b", "：职工灵活就业"),
    (r": employee veteran pre1949\b", "：职工离休"),
    (r": resident resident minor\b", "：居民未成年人"),
    (r": resident resident tier1\b", "：居民一档"),
    (r": resident resident tier2\b", "：居民二档"),
    (
        r"^outpatient table: (\S+) \(illustrative figures, not a real city's\)",
        r"门诊待遇表：\1（示例数据，非真实城市）",
    ),
    # facility and visit
    (
        r"external prescription from a (.+?), settled at the prescriber's rates",
        r"外配处方（开方机构：\1），按开方机构待遇结算",
    ),
    (r"an internet hospital is reimbursed at its hospital's tier and grade", "互联网医院按其依托医院的级别报销"),
    (r"两病 chronic visit at a village clinic under the remote pilot", "远程试点下村卫生室两病门诊"),
    (
        r"a chronic visit at a village clinic is payable only for 两病 under the remote pilot",
        "村卫生室门诊慢病仅限远程试点两病支付",
    ),
    (r"not a designated \(定点\) facility, no fund payment", "非定点机构，基金不予支付"),
    (r"outpatient costs during an inpatient stay are not fund-payable", "住院期间发生的门诊费用基金不予支付"),
    (r"a pharmacy purchase without an external prescription is not fund-payable", "无外配处方的药店购药基金不予支付"),
    (r"a temporary out-of-area visit gets no general outpatient fund payment", "临时外出就医的普通门诊基金不予支付"),
    (
        r"general outpatient is covered from tier 1 up; a village clinic is not",
        "普通门诊一级及以上机构可报，村卫生室不可报",
    ),
    (r"chronic visits are covered from tier 1 up", "门诊慢特病一级及以上机构可报"),
    (r"not one of the member's registered facilities, no fund payment", "非参保人签约机构，基金不予支付"),
    (r"not certified for (\S+) on (\S+); settled as general outpatient", r"\2未认定\1，按普通门诊结算"),
    (r"(\S+) of health check-up / public health lines is not fund-payable", r"体检/公共卫生项目\1元基金不予支付"),
    (
        r"temporary out-of-area, the member first pays (\S+) = (\S+), counted toward the limit",
        r"临时外出就医，个人先行自付\1＝\2元，计入限额",
    ),
    (r"TCM hospital, employee deductible and ratio of tier (\d)", r"中医医院，职工按\1级医院起付线和比例"),
    (
        r"TCM hospital, resident deductible of tier (\d), ratio \+5 points",
        r"中医医院，居民按\1级医院起付线，比例提高5个百分点",
    ),
    (r"TCM hospital", "中医医院"),
    # deductibles
    (
        r"configured tier-(\d) deductible (\S+), (\S+) already paid → deductible (\S+)",
        r"\1级机构起付线\2元（地方配置），本年已付\3元 → 本次起付\4元",
    ),
    (
        r"configured chronic deductible (\S+), (\S+) already paid → deductible (\S+)",
        r"门诊慢特病起付线\1元（地方配置），已付\2元 → 本次起付\3元",
    ),
    (
        r"tier-(\d) deductible (\S+), (\S+) already paid this year → deductible (\S+)",
        r"\1级机构起付线\2元，本年已付\3元 → 本次起付\4元",
    ),
    (
        r"chronic deductible (\S+) on the counter shared with general outpatient, (\S+) already paid "
        r"→ deductible (\S+)",
        r"门诊慢特病起付线\1元（与普通门诊共用），已付\2元 → 本次起付\3元",
    ),
    (r"deductible (\S+), (\S+) already paid this year → deductible (\S+)", r"起付线\1元，本年已付\2元 → 本次起付\3元"),
    (r"no deductible; band position (\S+)", r"不设起付线；本年累计位置\1元"),
    # who pays at which ratio
    (r"\bin-service\b", "在职"),
    (r"\bin service\b", "在职"),
    (r"\bretired 70\b", "70岁以上退休"),
    (r"\bretired\b", "退休"),
    (r"\bflexible\b", "灵活就业"),
    (r"\bresident tier1\b", "居民一档"),
    (r"\bresident tier2\b", "居民二档"),
    (r"\bresident minor\b", "居民未成年人"),
    (r"\bveteran-pre1949\b", "离休"),
    (
        r"configured (\S+) ratio (\S+) on (\S+) → (\S+); annual fund cap (\S+), (\S+) used → fund (\S+)",
        r"\1支付比例\2（地方配置），\3元 → \4元；年度基金限额\5元，已用\6元 → 基金支付\7元",
    ),
    (
        r"configured chronic ratio (\S+) on (\S+) → (\S+); pool (\S+) of certified caps, (\S+) used → fund (\S+)",
        r"门诊慢特病支付比例\1（地方配置），\2元 → \3元；认定限额合计\4元，已用\5元 → 基金支付\6元",
    ),
    (r"(\S+) ratio (\S+) at tier (\S+) on (\S+) → (\S+)", r"\1支付比例\2（\3级机构），\4元 → \5元"),
    (r"chronic ratio (\S+) on (\S+) → (\S+)", r"门诊慢特病支付比例\1，\2元 → \3元"),
    (r"ratio (\S+) on (\S+) → fund (\S+)", r"支付比例\1，\2元 → 基金支付\3元"),
    (r"band (\d+), (\S+) at (\S+) = (\S+)", r"第\1段，\2元 × \3 ＝ \4元"),
    (r"(\S+) above (\S+) is not fund-payable", r"超过\2元的\1元基金不予支付"),
    (
        r"consultation/diagnosis/nucleic-acid fees (\S+) at the first-band (\S+), outside the bands",
        r"诊查费/一般诊疗费/核酸检测费\1元按第一段比例\2支付，不计入分段",
    ),
    (r"limit (\S+) on the eligible expense above it, (\S+) used → base (\S+)", r"限额\1元，已用\2元 → 计算基数\3元"),
    (
        r"chronic pool (\S+) from caps (.+?), (\S+) used → room (\S+)",
        r"门诊慢特病合计限额\1元（各病种限额：\2），已用\3元 → 可用\4元",
    ),
    (r"pool exhausted → fund (\S+), over the pool (\S+)", r"限额用尽 → 基金支付\1元，超限额\2元"),
    (
        r"annual general outpatient fund cap (\S+), (\S+) used → fund (\S+)",
        r"普通门诊年度基金限额\1元，已用\2元 → 基金支付\3元",
    ),
    (
        r"outpatient fund paid this year counts toward the inpatient annual cap: (\S+)",
        r"本年门诊基金支付计入住院年度最高支付限额：\1元",
    ),
    (r"employee chronic, deductible (\S+), inpatient ratio", r"职工门诊慢特病，起付线\1元，按住院比例"),
    (r"resident special chronic, deductible (\S+), inpatient ratio", r"居民门诊特殊病，起付线\1元，按住院比例"),
    (r"resident common chronic, deductible (\S+), ratio", r"居民门诊慢性病，起付线\1元，比例"),
    (r"pool of (\d+) certified cap\(s\) shared across diseases", r"\1个认定病种限额合并使用"),
    (r"incentive bonus \+(\S+) points", r"激励加成＋\1个百分点"),
    (r"(\S+), general outpatient at tier (\d)", r"\1，\2级机构普通门诊"),
    (r" ?at a community facility", "在基层（社区）机构"),
    (r" ?at a non-community facility", "在非基层机构"),
    # the personal account and family mutual aid
    (r"family mutual aid \(家庭共济\), paid from (\S+)'s account \((\w+)\)", r"家庭共济，由\1的个人账户支付（\2）"),
    (r"（spouse_parent）", "（配偶父母）"),
    (r"（spouse）", "（配偶）"),
    (r"（parent）", "（父母）"),
    (r"（child）", "（子女）"),
    (
        r"the personal account pays (\S+) of the member share (\S+) \(balance (\S+)\)",
        r"个人账户支付\1元（个人负担\2元，余额\3元）",
    ),
    (
        r"the personal account pays only at designated facilities; the member share is cash",
        "个人账户仅限定点机构使用，个人负担以现金支付",
    ),
    (r"the account of (\S+) is closed; the member share is cash", r"\1的个人账户已关闭，个人负担以现金支付"),
    (r"the account of (\S+) is closed; the refund is paid in cash", r"\1的个人账户已关闭，退款以现金支付"),
    # reversals
    (r"reversal \(退费\) of settlement (\S+): (.+)$", r"冲销结算\1（退费）：\2"),
    (r"returns exactly what the settlement consumed", "按原结算如数退回"),
    # words left between the phrases
    (r"\bpolicy notes §(\d+)", r"政策说明§\1"),
    (r"\bgeneral hospital tier (\d)([AB]?)", r"\1级\2综合医院"),
    (r"\bcommunity health center tier (\d)", r"\1级社区卫生服务中心"),
    (r"\btownship health center tier (\d)", r"\1级乡镇卫生院"),
    (r"\btcm hospital tier (\d)([AB]?)", r"\1级\2中医医院"),
    (r"\bvillage clinic tier (\d)", "村卫生室"),
    (r"\binternet hospital tier (\d)([AB]?)", r"\1级\2互联网医院"),
    (r"(\d)(?:\.0+)?%", r"\1%"),
    (r": ", "："),
    (r"; ", "；"),
    (r", ", "，"),
)


def _guard(pattern: str) -> str | None:
    """The longest run of plain words a pattern cannot match without: a line lacking it is not searched."""
    plain = re.sub(r"\\.|[()\[\]?*+|^$]", "\0", pattern)
    runs = [run.strip() for run in re.findall(r"[A-Za-z][A-Za-z ',/-]*", plain)]
    return max(runs, key=len) if runs else None


_COMPILED = tuple((re.compile(pattern), rendering, _guard(pattern)) for pattern, rendering in PHRASES)


def in_chinese(lines: Iterable[str]) -> list[str]:
    return [render(line) for line in lines]


def render(line: str) -> str:
    for pattern, rendering, guard in _COMPILED:
        if guard is None or guard in line:
            line = pattern.sub(rendering, line)
    return line

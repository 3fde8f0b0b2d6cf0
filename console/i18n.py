"""The console in its users' language: Simplified Chinese by default, English on request; money as ¥ with two
decimals, dates as YYYY-MM-DD. Explanation lines come from `policies.explanations`' one template table."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal, InvalidOperation

from ledger.adoption import EVERY_REGION
from ledger.contract import POLICY_TZ
from policies.explanations import WORDS_ZH, render

LANGUAGES = ("zh", "en")
DEFAULT = "zh"

REGIONS = {
    "640000": ("宁夏", "Ningxia"),
    "371000": ("威海", "Weihai"),
    "320100": ("南京", "Nanjing"),
    "150000": ("内蒙古", "Inner Mongolia"),
}

# key: (中文, English)
TEXT = {
    "title": ("门诊共济审计与基金控制台", "Outpatient mutual-aid audit and fund console"),
    "login": ("登录", "Log in"),
    "logout": ("退出", "Log out"),
    "user": ("用户名", "User"),
    "password": ("密码", "Password"),
    "bad_login": ("用户名或密码错误", "Wrong user or password"),
    "locked": ("登录失败次数过多，请 15 分钟后再试", "Too many failed logins: try again in 15 minutes"),
    "member": ("参保人", "Member"),
    "members": ("参保人查询", "Members"),
    "settlement": ("结算", "Settlement"),
    "fund": ("基金", "Fund"),
    "whatif": ("政策测算", "What-if"),
    "queue": ("拒收与待处理", "Queue"),
    "integrity": ("完整性校验", "Integrity"),
    "access_log": ("查阅记录", "Access log"),
    "search": ("查询", "Search"),
    "member_id": ("参保人编号", "Member id"),
    "year": ("年度", "Year"),
    "region": ("统筹区", "Region"),
    "month": ("月份", "Month"),
    "forbidden": ("无权访问此页面", "You may not open this page"),
    "not_found": ("未找到", "Not found"),
    "no_member": ("未找到参保人 {id}", "No member {id}"),
    "no_settlement": ("未找到结算 {id}", "No settlement {id}"),
    "enrolment": ("参保情况", "Enrolment"),
    "enrolled": ("参保", "enrolled"),
    "not enrolled": ("未参保", "not enrolled"),
    "terminated": ("终止参保", "terminated"),
    "enrolled_from": ("参保日期", "enrolled from"),
    "insurance": ("险种 / 人员类别", "insurance / person type"),
    "retired_on": ("退休手续办结", "retirement completed"),
    "terminated_on": ("终止日期", "terminated on"),
    "balance": ("个人账户余额", "personal account balance"),
    "balance_year_end": ("{year} 年末个人账户余额", "account balance at the end of {year}"),
    "balance_now": ("当前个人账户余额", "account balance now"),
    "closed": ("（已注销）", " (closed)"),
    "incentive": ("激励", "incentive"),
    "bonus_points": ("比例激励 {n} 个百分点（001 第十二条）", "ratio bonus {n} points (001 第十二条)"),
    "health_streak": ("健康激励连续 {n} 年（002 第七条）", "health streak {n} year(s) (002 第七条)"),
    "accumulators": ("{year} 年度累计与剩余额度", "accumulators {year}"),
    "remaining": ("剩余", "remaining"),
    "settlements": ("结算记录", "settlements"),
    "movements": ("个人账户收支", "account movements"),
    "incentives": ("年度激励评定", "incentive evaluations"),
    "family": ("家庭共济授权", "family mutual aid authorisations"),
    "beneficiary": ("被授权人", "beneficiary"),
    "relation": ("关系", "relation"),
    "date": ("日期", "date"),
    "visit": ("就诊", "visit"),
    "policy": ("政策", "policy"),
    "total": ("医疗费用总额", "total"),
    "deductible": ("起付线", "deductible"),
    "fund_paid": ("统筹基金支付", "fund paid"),
    "pool": ("统筹类别", "pool"),
    "account": ("个人账户支付", "account"),
    "cash": ("现金支付", "cash"),
    "kind": ("类型", "kind"),
    "purpose": ("用途", "purpose"),
    "amount": ("金额", "amount"),
    "explanation": ("计算过程", "explanation"),
    "reversal": ("退费", "reversal"),
    "calculation": ("逐条计算", "calculation, rule by rule"),
    "summary": ("结算结果", "settlement"),
    "accumulators_moved": ("累计额度变动", "accumulators moved"),
    "source_event": ("原始事件", "source event"),
    "ledger_position": ("账本位置", "ledger position"),
    "ledger_sequence": ("账本序号", "ledger sequence"),
    "event": ("事件", "event"),
    "event_hash": ("事件哈希", "event hash"),
    "chain": ("哈希链前后事件", "chain neighbours"),
    "parameters": ("参数集", "parameters"),
    "parameters_of": ("{policy} 记录的参数", "parameters of {policy} as recorded"),
    "reverses": ("冲销的结算", "reverses"),
    "reversed_by": ("被退费", "reversed by"),
    "facility_level": ("医疗机构级别", "facility level"),
    "facility": ("医药机构", "facility"),
    "visits": ("人次", "visits"),
    "reversals": ("退费笔数", "reversals"),
    "fund_general": ("普通门诊统筹", "fund general"),
    "fund_chronic": ("门诊慢特病", "fund chronic"),
    "all": ("合计", "all"),
    "fund_by_level": ("{region} {month} 按医疗机构级别", "{region} {month} by facility level"),
    "clearing": ("{region} {month} 定点医药机构清算表", "{region} {month} clearing statement per facility"),
    "fund_over_months": ("{region} 逐月统筹基金支付（fund_totals）", "{region} fund paid by month (fund_totals)"),
    "download_csv": ("下载 CSV", "Download CSV"),
    "general": ("普通门诊", "general"),
    "chronic": ("门诊慢特病", "chronic"),
    "upload": ("上传参数文件（TOML）", "Upload a parameter file (TOML)"),
    "start": ("开始", "Start"),
    "running": ("运行中", "running"),
    "done": ("完成", "done"),
    "failed": ("失败", "failed"),
    "progress": ("进度", "progress"),
    "fund_impact": ("基金影响（按统筹区、类别、月份）", "fund impact per region, pool and month"),
    "ledger": ("账本", "ledger"),
    "what_if": ("测算", "what-if"),
    "change": ("变化", "change"),
    "changed_settlements": ("{n} 笔结算发生变化", "{n} settlement(s) change"),
    "bad_parameters": ("参数文件有误：{error}", "Bad parameter file: {error}"),
    "too_large": ("文件过大（上限 {limit} 字节）", "File too large (at most {limit} bytes)"),
    "no_file": ("请选择参数文件", "Choose a parameter file"),
    "busy": ("已有一个任务在运行，请稍候", "Another run is under way; wait for it"),
    "rejections": ("拒收记录", "rejections"),
    "parked": ("待处理（等待参保登记）", "parked (waiting for enrolment)"),
    "counts": ("按原因与日期统计", "counts by reason and day"),
    "reason": ("原因", "reason"),
    "detail": ("说明", "detail"),
    "payload": ("原始内容", "payload"),
    "count": ("数量", "count"),
    "recorded_at": ("记录时间", "recorded"),
    "parked_at": ("暂存时间", "parked"),
    "last_verify": ("最近一次 replay --verify", "last replay --verify"),
    "never_verified": ("尚未在控制台运行过校验", "No verification run from the console yet"),
    "verify_now": ("立即校验", "Verify now"),
    "result": ("结果", "result"),
    "verified": ("校验通过", "verified"),
    "not_verified": ("校验未通过", "NOT verified"),
    "started": ("开始时间", "started"),
    "finished": ("完成时间", "finished"),
    "by": ("操作人", "by"),
    "replayed": ("重放", "replayed"),
    "chain_breaks": ("哈希链断点", "chain breaks"),
    "differences": ("差异", "differences"),
    "root_hash": ("根哈希（链头）", "root hash (chain head)"),
    "stream_heads": ("各统筹区链头", "stream heads"),
    "viewed_at": ("查阅时间", "viewed"),
    "csrf": ("表单已失效，请刷新后重试", "The form has expired: reload the page and try again"),
    "language": ("English", "中文"),
    "masked": ("（已脱敏）", "(masked)"),
    "article": ("条文", "article"),
    "none": ("无", "none"),
}


# A settlement's amounts as `audit explain` labels them, and as the national settlement list (结算清单) names them.
SUMMARY_ZH = {
    "visit": "就诊编号",
    "member": "参保人",
    "date": "就诊日期",
    "policy": "政策版本",
    "total": "医疗费用总额",
    "out of catalogue": "目录外费用",
    "pre self-pay": "先行自付",
    "in policy": "政策范围内费用",
    "deductible": "起付线",
    "fund": "统筹基金支付",
    "pool": "统筹类别",
    "ratio": "支付比例",
    "copay": "按比例自付",
    "over limit": "超限额自付",
    "member share": "个人负担",
    "account": "个人账户支付",
    "cash": "现金支付",
    "limit remaining": "剩余限额",
}


def summary_label(label: str, language: str) -> str:
    return SUMMARY_ZH.get(label, label) if language == "zh" else label


def text(key: str, language: str, **values: object) -> str:
    pair = TEXT.get(key)
    if pair is None:
        return key
    chosen = pair[0] if language == "zh" else pair[1]
    return chosen.format(**values) if values else chosen


def region_name(code: str, language: str) -> str:
    if code == EVERY_REGION:
        # the single chain written before each region had its stream (`ledger.streams`), adoptions for all included
        return "分区前的单一链（历史）" if language == "zh" else "the single chain before streams (history)"
    names = REGIONS.get(code)
    if names is None:
        return code
    return f"{names[0] if language == 'zh' else names[1]} {code}"


# The account's movements: what they are and what for (policies.accounts, the regions' credits).
MOVEMENT_WORDS_ZH = {
    "credit": "划入",
    "debit": "支出",
    "payout": "支取",
    "contribution": "个人缴费划入",
    "employer part": "单位缴费划入",
    "retiree credit": "退休人员划入",
    "health incentive": "健康激励",
    "visit payment": "就医支付",
    "family visit payment": "家庭共济就医支付",
}


def word(value: str | None, language: str) -> str:
    """An enum value (insurance type, person type, pool, purpose) as the bureaus say it."""
    if value is None:
        return ""
    spoken = value.replace("_", " ")
    if language == "en":
        return spoken
    if value in ("general", "chronic"):
        return TEXT[value][0]
    return WORDS_ZH.get(spoken) or MOVEMENT_WORDS_ZH.get(spoken, spoken)


def money(value: object) -> str:
    """¥1,234.56: two decimals, exact (a Decimal, or the text of one)."""
    if value is None or value == "":
        return ""
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        return str(value)
    sign = "-" if amount < 0 else ""
    return f"{sign}¥{abs(amount).quantize(Decimal('0.01')):,}"


def day(value: object) -> str:
    """YYYY-MM-DD; a moment is taken in the policies' time zone (Asia/Shanghai)."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.astimezone(POLICY_TZ).date().isoformat()
    if isinstance(value, date):
        return value.isoformat()
    return str(value)[:10]


def moment(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.astimezone(POLICY_TZ).strftime("%Y-%m-%d %H:%M:%S")
    return str(value)


def explanation(line: str, language: str) -> str:
    return render(line, language)

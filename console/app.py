"""The console's pages: FastAPI, server-rendered with Jinja2, reading the ledger only through the functions the
commands use (`ledger.reports`: `member show`, `audit explain`; `ledger.replay`: `replay`; `ledger.db.fund_report`:
`report --by facility`)."""

from __future__ import annotations

import csv
import io
import re
import secrets
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, TypedDict
from urllib.parse import quote

import asyncpg
from fastapi import FastAPI, Form, Request, UploadFile
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from ledger.db import console_reads, console_users, fund_report
from ledger.db.connect import lent
from ledger.db.report_reads import PostgresReportReads
from ledger.db.server import Database, dsn
from ledger.display import csv_cell, visible
from ledger.replay import keep_verification
from ledger.reports import (
    Statement,
    clearing_statement,
    explain,
    fund_month,
    recorded_values,
    statements,
    trace_position,
)
from policies.parameters import ParameterError, parse_parameters
from policies.registry import PolicyRegistry
from policies.summary import status_word

from . import i18n
from .articles import article_link, document
from .jobs import Job, Jobs
from .passwords import verify
from .sessions import COOKIE, HOME, Attempts, Session, Sessions

HERE = Path(__file__).parent
MAX_UPLOAD = 256 * 1024  # a parameter file is a few kilobytes
MAX_BODY = 2 * MAX_UPLOAD  # a form, an upload among its fields
MONTHS_KEPT = 512  # a region's month figures kept while they stand
MEMBER_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
YEAR = re.compile(r"[0-9]{4}", re.ASCII)
LOGIN_COOKIE = "medledger_login"  # the login form's CSRF token, before there is a session


class Forbidden(Exception):
    pass


class LoggedOut(Exception):
    pass


class FundFigures(TypedDict):
    """What the fund page and its clearing CSV show of a region's month."""

    regions: list[str]
    region: str
    months: list[date]
    month: date | None
    totals: list[dict]  # the region's fund_totals, every month
    levels: list[dict]  # the month by facility level (fund_month)
    facilities: list[dict]  # the month by facility (clearing_statement)


def create_app(db: Database, console_url: str) -> FastAPI:
    """`db` for replays (its service URL is the console's role), `console_url` for the pages' own reads."""
    sessions = Sessions()
    attempts = Attempts()
    jobs = Jobs(db)
    # (region, month, its fund_totals counts) → its figures by level and by facility
    month_figures: OrderedDict[tuple, tuple[list[dict], list[dict]]] = OrderedDict()
    pool: dict[str, asyncpg.Pool] = {}

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        pool["main"] = await asyncpg.create_pool(dsn(console_url), min_size=1, max_size=4)
        try:
            yield
        finally:
            await pool["main"].close()

    app = FastAPI(lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.sessions, app.state.jobs = sessions, jobs
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    templates = Jinja2Templates(directory=HERE / "templates")
    env = templates.env
    env.globals.update(money=i18n.money, day=i18n.day, moment=i18n.moment, region_name=shown(i18n.region_name))
    env.globals.update(word=shown(i18n.word), explanation=shown(i18n.explanation), article_link=article_link)
    # Producer text as `member show` and `audit explain` print it: what would move or hide other text escaped
    env.filters.update(visible=visible, visible_lines=visible_lines)
    env.globals.update(summary_label=i18n.summary_label)

    def language(request: Request) -> str:
        chosen = request.cookies.get("lang")
        return chosen if chosen in i18n.LANGUAGES else i18n.DEFAULT

    def page(request: Request, name: str, session: Session | None, status: int = 200, **context: Any) -> HTMLResponse:
        lang = language(request)

        def t(key: str, **values: Any) -> str:
            return i18n.text(key, lang, **values)

        return templates.TemplateResponse(
            request,
            name,
            {
                "session": session,
                "lang": lang,
                "t": t,
                "path": request.url.path,
                "here": request.url.path + (f"?{request.url.query}" if request.url.query else ""),
                **context,
            },
            status_code=status,
            headers={"Cache-Control": "no-store"},
        )

    async def session_of(request: Request, page_name: str | None = None) -> Session:
        token = request.cookies.get(COOKIE)
        session = sessions.get(token)
        if session is None:
            raise LoggedOut()
        # A user removed, given another role or another password since logging in (`medledger users`, another
        # process) is logged out at the next request.
        async with lent(pool["main"]) as raw:
            found = await console_users.user(raw, session.user)
        if found is None or (found["role"], found["changed_at"]) != (session.role, session.changed_at):
            sessions.end(token)
            raise LoggedOut()
        if page_name is not None and not session.may(page_name):
            raise Forbidden()
        return session

    def secure(request: Request) -> bool:
        return request.url.scheme == "https"

    @app.exception_handler(LoggedOut)
    async def logged_out(request: Request, _error: Exception) -> RedirectResponse:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/login?next={quote(target)}", status_code=303)

    @app.exception_handler(Forbidden)
    async def forbidden(request: Request, _error: Exception) -> HTMLResponse:
        session = sessions.get(request.cookies.get(COOKIE))
        return page(request, "message.html", session, status=403, message=i18n.text("forbidden", language(request)))

    @app.middleware("http")
    async def headers(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        length = request.headers.get("content-length", "")
        if request.method == "POST" and (not length.isdigit() or int(length) > MAX_BODY):
            # an upload is read whole before a route sees it: a body too large (or of unstated size) is refused here
            message = i18n.text("too_large", language(request), limit=MAX_UPLOAD)
            response: Response = page(request, "message.html", None, status=413, message=message)
        else:
            response = await call_next(request)
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault(
            "Content-Security-Policy", "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'"
        )
        response.headers.setdefault("Referrer-Policy", "same-origin")
        return response

    def refused_form(request: Request, session: Session | None) -> HTMLResponse:
        return page(request, "message.html", session, status=403, message=i18n.text("csrf", language(request)))

    # -- logging in and out --------------------------------------------------------------------------------------------

    def safe_next(target: str | None) -> str | None:
        return target if target and target.startswith("/") and not target.startswith("//") else None

    @app.get("/login", response_class=HTMLResponse)
    async def login_page(request: Request, next: str | None = None, failed: bool = False) -> HTMLResponse:
        token = secrets.token_urlsafe(32)
        response = page(request, "login.html", None, next=safe_next(next) or "", failed=failed, csrf=token)
        response.set_cookie(LOGIN_COOKIE, token, httponly=True, samesite="strict", secure=secure(request))
        return response

    @app.post("/login")
    async def login(
        request: Request,
        user: str = Form(""),
        password: str = Form(""),
        csrf: str = Form(""),
        next: str = Form(""),
    ) -> Response:
        expected = request.cookies.get(LOGIN_COOKIE)
        if not expected or not secrets.compare_digest(expected, csrf):
            return refused_form(request, None)
        user = user[:128]
        if attempts.locked(user):
            message = i18n.text("locked", language(request))
            return page(request, "login.html", None, status=429, next=safe_next(next) or "", failed=message, csrf=csrf)
        async with lent(pool["main"]) as raw:
            found = await console_users.user(raw, user)
        if not verify(found["password_hash"] if found else None, password[:1024]) or found is None:
            attempts.failed(user)
            message = i18n.text("bad_login", language(request))
            return page(request, "login.html", None, status=401, next=safe_next(next) or "", failed=message, csrf=csrf)
        attempts.succeeded(user)
        token, session = sessions.start(found["name"], found["role"], found["changed_at"])
        response = RedirectResponse(safe_next(next) or HOME[session.role], status_code=303)
        response.set_cookie(COOKIE, token, httponly=True, samesite="strict", secure=secure(request))
        response.delete_cookie(LOGIN_COOKIE)
        return response

    @app.post("/logout")
    async def logout(request: Request, csrf: str = Form("")) -> Response:
        session = await session_of(request)
        if not session.csrf_ok(csrf):
            return refused_form(request, session)
        sessions.end(request.cookies.get(COOKIE))
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(COOKIE)
        return response

    @app.get("/lang")
    async def choose_language(request: Request, to: str = "zh", next: str = "/") -> RedirectResponse:
        response = RedirectResponse(safe_next(next) or "/", status_code=303)
        if to in i18n.LANGUAGES:
            response.set_cookie("lang", to, httponly=True, samesite="strict", secure=secure(request))
        return response

    @app.get("/")
    async def home(request: Request) -> RedirectResponse:
        return RedirectResponse(HOME[(await session_of(request)).role], status_code=303)

    # -- member --------------------------------------------------------------------------------------------------------

    @app.get("/member", response_class=HTMLResponse)
    async def member(request: Request, member_id: str = "", year: str = "", region: str = "") -> HTMLResponse:
        session = await session_of(request, "member")
        lang = language(request)
        context: dict = {"member_id": member_id, "year": year, "region": region, "statements": [], "error": None}
        if not member_id:
            return page(request, "member.html", session, **context)
        # ASCII digits only: str.isdigit() takes '²', which int() refuses
        chosen_year = int(year) if YEAR.fullmatch(year) and 1990 <= int(year) <= 2100 else None
        if not MEMBER_ID.match(member_id) or (year and chosen_year is None) or (region and not region.isdigit()):
            context["error"] = i18n.text("no_member", lang, id=member_id[:64])
            return page(request, "member.html", session, status=404, **context)
        async with lent(pool["main"]) as raw:
            found = await statements(PostgresReportReads(raw), member_id, chosen_year, region or None, date.today())
            for statement in found:  # who viewed which member, before the page is shown
                await console_users.log_access(raw, session.user, member_id, statement.region)
        if not found:
            context["error"] = i18n.text("no_member", lang, id=member_id)
            return page(request, "member.html", session, status=404, **context)
        context["statements"] = [_statement_view(s) for s in found]
        return page(request, "member.html", session, **context)

    # -- settlement ----------------------------------------------------------------------------------------------------

    @app.get("/settlement/{settlement_id}", response_class=HTMLResponse)
    async def settlement(request: Request, settlement_id: str) -> HTMLResponse:
        session = await session_of(request, "settlement")
        async with lent(pool["main"]) as raw:
            trace = await explain(PostgresReportReads(raw), settlement_id[:200])
            if trace is not None:
                trace["neighbours"] = await console_reads.chain_neighbours(raw, trace["seq"])
                trace["reversed_by"] = await console_reads.reversal_of(raw, settlement_id)
                await console_users.log_access(
                    raw, session.user, trace["record"]["member_id"], trace["record"]["region"]
                )
        if trace is None:
            message = i18n.text("no_settlement", language(request), id=settlement_id[:200])
            return page(request, "message.html", session, status=404, message=message)
        return page(request, "settlement.html", session, trace=_trace_view(trace))

    # -- policy documents ----------------------------------------------------------------------------------------------

    @app.get("/policy/{number}", response_class=HTMLResponse)
    async def policy_document(request: Request, number: str) -> HTMLResponse:
        session = await session_of(request)
        text = document(number)
        if text is None:
            return page(request, "message.html", session, status=404, message=i18n.text("not_found", language(request)))
        return page(request, "policy.html", session, number=number, paragraphs=text)

    # -- fund ----------------------------------------------------------------------------------------------------------

    async def fund_figures(region: str, month: str) -> FundFigures:
        async with lent(pool["main"]) as raw:
            known = await fund_report.regions_and_months(raw)
            regions = sorted({r for r, _ in known})
            region = region if region in regions else (regions[0] if regions else "")
            months = [m for r, m in known if r == region]
            first = _month(month)
            if first not in months:
                first = months[-1] if months else None
            figures = FundFigures(
                regions=regions, region=region, months=months, month=first, totals=[], levels=[], facilities=[]
            )
            if first is None:
                return figures
            figures["totals"] = await fund_report.fund_totals(raw, region)
            # The ledger is append-only and fund_totals counts every settlement and reversal of the month in the
            # transaction that records it: while those counts stand, the month's settlements are the same ones,
            # and so are its figures.
            key = (
                region,
                first,
                tuple((t["pool"], t["settlements"], t["reversals"]) for t in figures["totals"] if t["month"] == first),
            )
            kept = month_figures.get(key)
            if kept is None:
                kept = (
                    await fund_month(PostgresReportReads(raw), region, first),
                    await clearing_statement(PostgresReportReads(raw), region, first),
                )
                month_figures[key] = kept
                while len(month_figures) > MONTHS_KEPT:
                    month_figures.popitem(last=False)
            else:
                month_figures.move_to_end(key)
            figures["levels"], figures["facilities"] = kept
        return figures

    @app.get("/fund", response_class=HTMLResponse)
    async def fund(request: Request, region: str = "", month: str = "") -> HTMLResponse:
        session = await session_of(request, "fund")
        figures = await fund_figures(region, month)
        return page(request, "fund.html", session, **figures, sum_lines=_sum_lines, chart=_fund_chart(figures))

    @app.get("/fund/clearing.csv")
    async def clearing_csv(request: Request, region: str = "", month: str = "") -> Response:
        await session_of(request, "fund")
        figures = await fund_figures(region, month)
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(["region", "month", "facility_id", *CLEARING_COLUMNS])
        month_text = figures["month"].strftime("%Y-%m") if figures["month"] else ""
        for line in figures["facilities"]:
            row = [figures["region"], month_text, line["facility_id"] or "", *_cells(line)]
            # a facility id is producer text: one that starts like a formula is kept as text (ledger.display)
            writer.writerow([csv_cell(cell) for cell in row])
        name = f"clearing-{figures['region']}-{month_text}.csv"
        return Response(
            out.getvalue(),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{name}"', "Cache-Control": "no-store"},
        )

    # -- what-if -------------------------------------------------------------------------------------------------------

    @app.get("/whatif", response_class=HTMLResponse)
    async def whatif_page(request: Request, job: str = "") -> HTMLResponse:
        session = await session_of(request, "whatif")
        chosen = jobs.get(job) if job else jobs.latest("whatif")
        if chosen is not None and chosen.kind != "whatif":
            chosen = None
        return page(request, "whatif.html", session, job=chosen, error=None, impact=_impact(chosen))

    @app.post("/whatif", response_class=HTMLResponse)
    async def whatif_start(request: Request, csrf: str = Form(""), parameters: UploadFile | None = None) -> Response:
        session = await session_of(request, "whatif")
        if not session.csrf_ok(csrf):
            return refused_form(request, session)
        lang = language(request)

        def refuse(message: str, status: int = 400) -> HTMLResponse:
            return page(request, "whatif.html", session, status=status, job=None, error=message, impact=None)

        if parameters is None or not parameters.filename:
            return refuse(i18n.text("no_file", lang))
        content = await parameters.read(MAX_UPLOAD + 1)
        if len(content) > MAX_UPLOAD:
            return refuse(i18n.text("too_large", lang, limit=MAX_UPLOAD), status=413)
        name = Path(parameters.filename).name[:100]
        try:
            text = content.decode("utf-8")
            PolicyRegistry(parse_parameters(text, name))  # what `replay --policy` refuses, refused here
        except (UnicodeDecodeError, ParameterError, ValueError) as error:
            return refuse(i18n.text("bad_parameters", lang, error=str(error)[:500]))
        job = jobs.start("whatif", session.user, name, text)
        if job is None:
            return refuse(i18n.text("busy", lang), status=409)
        return RedirectResponse(f"/whatif?job={job.job_id}", status_code=303)

    @app.get("/jobs/{job_id}")
    async def job_progress(request: Request, job_id: str) -> JSONResponse:
        session = await session_of(request)
        job = jobs.get(job_id)
        if job is None or not session.may("whatif" if job.kind == "whatif" else "integrity"):
            return JSONResponse({"error": "unknown job"}, status_code=404)
        return JSONResponse(
            {"percent": job.percent, "done": job.done, "total": job.total, "finished": job.finished, "error": job.error}
        )

    # -- queue ---------------------------------------------------------------------------------------------------------

    @app.get("/queue", response_class=HTMLResponse)
    async def queue(request: Request, q: str = "") -> HTMLResponse:
        session = await session_of(request, "queue")
        search = q.strip()[:100] or None
        async with lent(pool["main"]) as raw:
            rejections = await console_reads.rejections(raw, search)
            counts = await console_reads.rejection_counts(raw)
            parked = await console_reads.parked(raw, search)
        return page(request, "queue.html", session, q=q[:100], rejections=rejections, counts=counts, parked=parked)

    # -- integrity -----------------------------------------------------------------------------------------------------

    async def record(job: Job) -> None:
        assert job.report is not None  # `Jobs` runs this once the replay has reported
        connection = await asyncpg.connect(dsn(console_url))
        try:
            await keep_verification(connection, job.report, job.user, job.started_at)
        finally:
            await connection.close()

    @app.get("/integrity", response_class=HTMLResponse)
    async def integrity(request: Request) -> HTMLResponse:
        session = await session_of(request, "integrity")
        async with lent(pool["main"]) as raw:
            last = await console_users.last_verification(raw)
        job = jobs.latest("verify")
        return page(request, "integrity.html", session, last=last, job=job, error=None)

    @app.post("/integrity/verify", response_class=HTMLResponse)
    async def integrity_verify(request: Request, csrf: str = Form("")) -> Response:
        session = await session_of(request, "verify")
        if not session.csrf_ok(csrf):
            return refused_form(request, session)
        job = jobs.start("verify", session.user, after=record)
        if job is None:
            async with lent(pool["main"]) as raw:
                last = await console_users.last_verification(raw)
            message = i18n.text("busy", language(request))
            return page(request, "integrity.html", session, status=409, last=last, job=None, error=message)
        return RedirectResponse("/integrity", status_code=303)

    # -- access log ----------------------------------------------------------------------------------------------------

    @app.get("/access-log", response_class=HTMLResponse)
    async def access_log(request: Request, member_id: str = "") -> HTMLResponse:
        session = await session_of(request, "access_log")
        async with lent(pool["main"]) as raw:
            entries = await console_users.access_log(raw, member_id[:64] or None)
        return page(request, "access_log.html", session, entries=entries, member_id=member_id[:64])

    return app


def shown(words: Callable[..., str]) -> Callable[..., str]:
    """`words` (a function that puts a code into words, or leaves an unknown one as it is) with what it returns
    made visible: an unknown code is producer text."""

    def show(*args: Any, **kwargs: Any) -> str:
        return visible(words(*args, **kwargs))

    return show


def visible_lines(text: object) -> str:
    """`visible` line by line, for a <pre> block: its line ends kept, every other hidden character escaped."""
    return "\n".join(visible(line) for line in str(text).split("\n"))


# -- what the pages show, shaped from what the commands print --------------------------------------------------------

ACCUMULATORS = (  # as `member show` labels them (ledger.cli.render.render_statement)
    ("deductible paid", "deductible_paid", "已付起付线"),
    ("chronic deductible paid", "chronic_deductible_paid", "门诊慢特病已付起付线"),
    ("general fund paid", "general_fund_paid", "普通门诊统筹已支付"),
    ("chronic fund paid", "chronic_fund_paid", "门诊慢特病统筹已支付"),
    ("capped base used", "capped_base_used", "限额内已用"),
    ("chronic base used", "chronic_base_used", "慢特病限额已用"),
    ("band position", "band_position", "分段累计位置"),
    ("chronic pool", "chronic_pool", "慢特病额度池"),
    ("external fund paid", "external_fund_paid", "其他基金支付"),
)
LIMITS_ZH = {
    "general outpatient fund cap": "普通门诊统筹年度最高支付限额余额",
    "chronic pool": "门诊慢特病额度余额",
    "special chronic pool": "特殊慢性病额度余额",
    "common chronic limit": "普通慢性病限额余额",
    "general outpatient limit on eligible expense": "普通门诊政策范围内费用限额余额",
    "band room below 15000": "15000 元以下分段余额",
    "special-disease pool": "特殊病种额度余额",
    "outpatient fund counted toward the inpatient cap": "计入住院年度限额的门诊统筹支付",
}
FEN = Decimal("0.01")
CLEARING_COLUMNS = ("visits", "reversals", "total_amount", "fund_general", "fund_chronic", "account_paid", "cash_paid")


def limit_label(label: str, language: str) -> str:
    """A `limits_remaining` label in the console's language; the article it cites kept as it is."""
    if language == "en":
        return f"remaining: {label}"
    name, _, rest = label.partition(" (")
    cited = f"（{rest[:-1]}）" if rest.endswith(")") else ""
    cited = cited.replace("configured", "参数配置")
    return LIMITS_ZH.get(name, name) + cited


def _statement_view(statement: Statement) -> dict[str, Any]:
    member, row = statement.state, statement.year_row or {}
    end = date(statement.year, 12, 31)
    status = member.status_on(end)
    accumulators = [
        (label, zh, row.get(column))
        for label, column, zh in ACCUMULATORS
        if row.get(column) not in (None, Decimal("0"), Decimal("0.00"))
    ]
    balance_year = row.get("balance")
    movements = statement.movements
    return {
        "s": statement,
        "member": member,
        "status_word": status_word(member, end),
        "status": status,
        "balance_year": balance_year if balance_year is not None and balance_year != member.balance else None,
        "accumulators": accumulators,
        "limits": list(statement.limits.items()),
        "limit_label": limit_label,
        "years": list(range(member.enrolled_on.year, max(statement.year, date.today().year) + 1)),
        "chart": {
            "labels": [label for label, _, _ in accumulators] + [f"remaining: {label}" for label in statement.limits],
            "labels_zh": [zh for _, zh, _ in accumulators] + [limit_label(label, "zh") for label in statement.limits],
            "used": [str(value) for _, _, value in accumulators] + [None] * len(statement.limits),
            "remaining": [None] * len(accumulators) + [str(value) for value in statement.limits.values()],
            "balance_days": [i18n.day(m["occurred_at"]) for m in movements],
            "balance": [m["balance_after"] for m in movements],
        },
    }


def _trace_view(trace: dict) -> dict[str, Any]:
    return {
        **trace,
        "s": trace["record"],
        "position": trace_position(trace),
        "values": recorded_values(trace),
        "payload_pretty": _pretty(trace["payload"]),
        "neighbours": [
            {**n, "hash": bytes(n["hash"]).hex(), "prev_hash": bytes(n["prev_hash"]).hex()} for n in trace["neighbours"]
        ],
    }


def _pretty(payload: str) -> str:
    import json

    return json.dumps(json.loads(payload), ensure_ascii=False, indent=2)


def _month(text: str) -> date | None:
    try:
        return date.fromisoformat(text + "-01") if text else None
    except ValueError:
        return None


def _cells(line: dict) -> list[int | Decimal]:
    """As `medledger report` prints them: counts, and amounts to the fen (numbers, which `csv_cell` keeps as
    numbers, a negative one included)."""
    return [
        int(line["visits"]),
        int(line["reversals"]),
        *(Decimal(line[name]).quantize(FEN) for name in CLEARING_COLUMNS[2:]),
    ]


def _sum_lines(lines: list[dict]) -> dict:
    return {
        name: sum((line[name] for line in lines), Decimal(0) if name not in ("visits", "reversals") else 0)
        for name in CLEARING_COLUMNS
    }


def _fund_chart(figures: FundFigures) -> dict[str, list[str]]:
    months = sorted({row["month"] for row in figures["totals"]})
    by = {(row["month"], row["pool"]): row["fund_paid"] for row in figures["totals"]}
    return {
        "months": [m.strftime("%Y-%m") for m in months],
        "general": [str(by.get((m, "general"), Decimal("0.00"))) for m in months],
        "chronic": [str(by.get((m, "chronic"), Decimal("0.00"))) for m in months],
    }


def _impact(job: Job | None) -> dict[str, Any] | None:
    if job is None or job.report is None:
        return None
    rows: list[dict[str, Any]] = [
        {
            "region": region,
            "pool": pool,
            "month": month.strftime("%Y-%m"),
            "before": before,
            "after": after,
            "change": after - before,
        }
        for (region, pool, month), (before, after) in sorted(job.report.fund_impact.items())
    ]
    total_before = sum((r["before"] for r in rows), Decimal("0.00"))
    total_after = sum((r["after"] for r in rows), Decimal("0.00"))
    return {
        "rows": rows,
        "changed": [r for r in rows if r["before"] != r["after"]],
        "total_before": total_before,
        "total_after": total_after,
        "replayed": job.report.replayed(),
        "changed_settlements": job.report.changed_settlements,
        "chart": {
            "labels": [f"{r['region']} {r['pool']} {r['month']}" for r in rows],
            "before": [str(r["before"]) for r in rows],
            "after": [str(r["after"]) for r in rows],
        },
    }


def now() -> datetime:
    return datetime.now(UTC)

"""The HTTP endpoint: `POST /fsi/api/rsfComIfsService/callService`, the platform's envelope in and its answer out.

Every message is signed (`signature`); a refused signature is answered HTTP 401, anything else HTTP 200 with
`infcode` 0 or -1 and `err_msg` naming the reason and the field, as a HIS built for the platform reads it. Every
refusal is logged and counted; none is written to the ledger (a settlement the ledger itself refuses is kept in
its rejections, as any refused event is)."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime

import orjson
from fastapi import FastAPI, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from ledger.codec import dumps
from ledger.contract import POLICY_TZ

from .core import Gateway
from .envelope import MAX_BODY, Envelope, answer, envelope_of, member_named, parse_body
from .errors import Refused, bad_field
from .transactions import TRANSACTIONS

PATH = "/fsi/api/rsfComIfsService/callService"
log = logging.getLogger("medledger.gateway")


async def bounded_body(request: Request) -> bytes:
    """The request's body, refused as soon as it grows past `MAX_BODY`."""
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY:
            raise bad_field("body", f"is larger than {MAX_BODY} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def json_response(body: dict, status: int = 200) -> Response:
    return Response(dumps(body), status_code=status, media_type="application/json; charset=utf-8")


def create_app(gateway: Gateway) -> FastAPI:
    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await gateway.start()
        log.info("medledger gateway serving", extra={"path": PATH})
        try:
            yield
        finally:
            await gateway.stop()
            log.info("medledger gateway stopped")

    app = FastAPI(title="medledger national interface", lifespan=lifespan, docs_url=None, redoc_url=None)
    metrics = gateway.metrics

    def refused(
        refusal: Refused, infno: str, caller: str | None, status: int, received: datetime, region: str | None = None
    ) -> Response:
        metrics.refused.labels(refusal.reason).inc()
        metrics.answered.labels(infno, "-1").inc()
        log.warning(
            "message refused",
            extra={"reason": refusal.reason, "detail": refusal.detail, "infno": infno, "caller": caller},
        )
        return json_response(answer(received, refused=refusal, region=region), status)

    def logged(envelope: Envelope | None, caller: str, infcode: int) -> None:
        """Who asked what of whom: every message answered after its signature, at INFO, so a lookup of a member
        (1101: birth date, balance, status) is on record with the facility that made it."""
        if envelope is None:
            return
        log.info(
            "message answered",
            extra={
                "caller": caller,
                "infno": envelope.infno,
                "msgid": envelope.msgid,
                "psn_no": member_named(envelope.input),
                "region": envelope.insuplc_admdvs,
                "infcode": infcode,
            },
        )

    @app.post(PATH)
    async def call_service(request: Request) -> Response:
        received = datetime.now(POLICY_TZ)
        started = time.perf_counter()
        infno = "unknown"
        try:
            caller = gateway.signatures.caller(request.headers)
        except Refused as refusal:
            return refused(refusal, infno, request.headers.get("x-tif-paasid"), 401, received)
        except Exception:  # a header no check foresaw: a bad signature all the same, never an HTTP 500
            log.warning("signature not checked", exc_info=True)
            unchecked = Refused("signature_invalid", "x-tif-signature does not match the caller's token")
            return refused(unchecked, infno, request.headers.get("x-tif-paasid"), 401, received)
        region = None
        envelope = None
        try:
            envelope = envelope_of(parse_body(await bounded_body(request)))
            region = envelope.insuplc_admdvs
            handler = TRANSACTIONS.get(envelope.infno)
            if handler is None:
                raise Refused(
                    "unknown_infno", f"envelope.infno: {envelope.infno} is not a transaction medledger answers"
                )
            infno = envelope.infno
            if envelope.fixmedins_code != caller:
                raise Refused(
                    "caller_mismatch", f"envelope.fixmedins_code: {envelope.fixmedins_code} is not the caller {caller}"
                )
            output = await handler(gateway, envelope)
        except Refused as refusal:
            logged(envelope, caller, -1)
            return refused(refusal, infno, caller, 200, received, region)
        except Exception:
            log.exception("message not answered", extra={"infno": infno, "caller": caller})
            metrics.answered.labels(infno, "-1").inc()
            logged(envelope, caller, -1)
            failure = Refused(
                "unavailable", "medledger could not answer now; send the message again with the same msgid"
            )
            return json_response(answer(received, refused=failure, region=region), 503)
        finally:
            metrics.seconds.labels(infno).observe(time.perf_counter() - started)
        metrics.answered.labels(infno, "0").inc()
        logged(envelope, caller, 0)
        return json_response(answer(received, output, region=region))

    @app.get("/metrics")
    async def prometheus() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/health")
    async def health() -> Response:
        return Response(orjson.dumps({"status": "ok"}), media_type="application/json")

    return app

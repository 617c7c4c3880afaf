"""The real-time scoring service: FastAPI on the champion and the online store.

``create_app(settings)`` builds the app (``churnops serve`` runs it under uvicorn, one per
worker process). Per request: the API key (``X-API-Key``), then ONE Redis round trip that
counts the customer's requests this minute (the rate limit, shared by every worker) and
reads the served night's rows (``churnops.online.store.READ_SCRIPT``), then the scoring
(``churnops.serve.models``), all inside the request's time limit.

Failures answer with a JSON body, never a traceback: 401 (no or wrong key), 404 (not in
the served night), 422 (bad payload), 429 (rate limit), 503 (no model, no night, the
store down with no batch prediction to fall back on, or a breaker open), 504 (time limit).
With the store down (or its breaker open) a customer gets the last batch prediction from
the warehouse, marked ``stale``. A circuit breaker guards the store and one the model.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import json
import logging
import random
import time
import uuid
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from fastapi.security import APIKeyHeader

from churnops.online.samples import samples_key
from churnops.online.store import READ_SCRIPT, pointer_key, redis_location, text, unpack_rows
from churnops.serve.keys import KeyChecker, keys_path
from churnops.serve.models import (
    NoServingModel,
    ServingMix,
    canary_share,
    load_mix,
    score_rows,
)
from churnops.serve.protection import CircuitBreaker
from churnops.serve.schemas import (
    BatchAnswer,
    BatchRequest,
    ErrorBody,
    Score,
    ScoreRequest,
)
from churnops.settings import Settings

if TYPE_CHECKING:
    from churnops.score.store import ScoringStore

log = logging.getLogger("churnops.serve")

API_KEY_HEADER = "X-API-Key"
# Counts each id's requests in the current minute; returns the counts.
RATE_SCRIPT = """
local out = {}
for i = 3, #ARGV do
  local key = ARGV[1] .. ARGV[i]
  local n = redis.call('INCR', key)
  if n == 1 then redis.call('EXPIRE', key, ARGV[2]) end
  out[#out + 1] = n
end
return out
"""
# Keeps the newest sampled requests for the nightly to move into the monitoring store.
SAMPLES_KEPT = 100_000
# A sampled batch request logs its first answers only: enough to compare online with batch
# scores, without one large request flooding the buffer.
SAMPLED_ANSWERS_PER_BATCH = 20


class ServiceError(Exception):
    """An answer other than 200, with its status, kind (for the metrics) and detail."""

    def __init__(self, status: int, kind: str, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.status, self.kind, self.detail, self.extra = status, kind, detail, extra


class Metrics:
    """The service's Prometheus metrics, on a registry of the app's own."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry()
        self.requests = Counter(
            "churnops_serve_requests",
            "HTTP requests by endpoint and status",
            ["endpoint", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "churnops_serve_request_seconds",
            "request latency by endpoint",
            ["endpoint"],
            buckets=(0.001, 0.002, 0.004, 0.006, 0.008, 0.01, 0.015, 0.025, 0.05, 0.1, 0.25, 1, 5),
            registry=self.registry,
        )
        self.errors = Counter(
            "churnops_serve_errors",
            "answers other than 200 by kind",
            ["kind"],
            registry=self.registry,
        )
        self.model = Gauge(
            "churnops_serve_model_info",
            "the serving models (value 1), by champion and challenger version",
            ["model", "champion_version", "challenger_version", "canary_share"],
            registry=self.registry,
        )
        self.breaker_open = Gauge(
            "churnops_serve_breaker_open",
            "1 while a breaker is open",
            ["dependency"],
            registry=self.registry,
        )
        self.stale = Counter(
            "churnops_serve_stale_answers",
            "scores answered from the warehouse's last batch (the store was down)",
            registry=self.registry,
        )

    def set_model(self, mix: ServingMix) -> None:
        self.model.clear()
        champion, challenger = mix.versions
        self.model.labels(mix.name, champion, challenger or "", f"{mix.canary_share:g}").set(1)


class Service:
    """State shared by the requests of one worker process."""

    def __init__(self, settings: Settings) -> None:
        import redis.asyncio as aioredis

        self.settings = settings
        serve = settings.serve
        self.online = settings.online
        self.location = redis_location(settings.online.url)
        self.redis = aioredis.Redis.from_url(
            settings.online.url, socket_connect_timeout=1, socket_timeout=2
        )
        self.read_script = self.redis.register_script(READ_SCRIPT)
        self.rate_script = self.redis.register_script(RATE_SCRIPT)
        self.keys = KeyChecker(keys_path(settings), serve.api_key)
        self.metrics = Metrics()
        self.mix: ServingMix | None = None
        self.mix_error = "loading the champion"
        self.nights: dict[str, tuple[str, ...]] = {}  # base -> feature names
        self.store_breaker = self._breaker("online_store")
        self.model_breaker = self._breaker("model")
        self._scoring: ScoringStore | None = None
        self.share_read_for: bytes | str | None = None  # the night served when the share was read

    def _breaker(self, name: str) -> CircuitBreaker:
        serve = self.settings.serve
        return CircuitBreaker(
            name, serve.breaker_error_rate, serve.breaker_min_calls, serve.breaker_reset_seconds
        )

    # ------------------------------------------------------------------ the model
    async def load_model(self) -> None:
        # Requests are scored on the event loop's thread, one row at a time: numba's
        # parallel TreeSHAP on one thread there (a per-thread setting), set once.
        import numba

        numba.set_num_threads(1)
        night = await self._served_night()
        try:
            mix = await asyncio.to_thread(load_mix, self.settings)
        except NoServingModel as error:
            self.mix_error = str(error)
            return
        except Exception as error:  # noqa: BLE001 - the service stays up, not ready
            self.mix_error = f"loading the champion failed: {type(error).__name__}: {error}"
            log.warning("%s", self.mix_error)
            return
        self.share_read_for = night
        self._swap(mix)

    async def _served_night(self) -> bytes | str | None:
        """The online store's served night (its base), None if unknown or unreachable.
        Read on a thread through a client of its own: the requests' connections stay the
        requests' (a time limit cancels a request inside its reads, never this one's)."""
        import redis

        def read() -> Any:
            client = redis.Redis.from_url(
                self.online.url, socket_connect_timeout=1, socket_timeout=2
            )
            try:
                return client.get(pointer_key(self.online.prefix))
            finally:
                client.close()

        try:
            return await asyncio.to_thread(read)
        except Exception:  # noqa: BLE001 - the store's own breaker reports it on requests
            return None

    def _swap(self, mix: ServingMix) -> None:
        # One assignment: a request in flight keeps the mix it started with.
        self.mix, self.mix_error = mix, ""
        self.metrics.set_model(mix)
        champion, challenger = mix.versions
        log.info(
            "serving %s v%s%s, canary share %g",
            mix.name,
            champion,
            f" (challenger v{challenger})" if challenger else "",
            mix.canary_share,
        )

    async def watch_registry(self) -> None:
        """Poll the aliases; load and swap in a new mix when they move."""
        from churnops.registry import current_aliases

        while True:
            await asyncio.sleep(self.settings.serve.model_poll_seconds)
            try:
                aliases = await asyncio.to_thread(current_aliases, self.settings)
                current = self.mix.versions if self.mix else None
                wanted = (aliases.get("champion"), aliases.get("challenger"))
                if (
                    self.mix is not None
                    and current is not None
                    and wanted[0] == current[0]
                    and (wanted[1] == current[1] or wanted[1] == wanted[0])
                ):
                    # Same models. The share moves with a rollout step, which takes effect
                    # from the next night's scoring: read it when a new night is served,
                    # not on every poll (on DuckDB, each read holds the warehouse file for
                    # a moment, and the nightly's writers need it).
                    night = await self._served_night()
                    if night is not None and night != self.share_read_for:
                        share = await asyncio.to_thread(
                            canary_share, self.settings, self.mix.versions[1]
                        )
                        self.share_read_for = night
                        if share != self.mix.canary_share:
                            self._swap(dataclasses.replace(self.mix, canary_share=share))
                    continue
                if wanted[0] is None:
                    continue  # keep serving what we have
                night = await self._served_night()
                self._swap(await asyncio.to_thread(load_mix, self.settings, aliases))
                self.share_read_for = night
            except asyncio.CancelledError:
                raise
            except Exception as error:  # noqa: BLE001 - keep the current model
                log.warning(
                    "model poll: %s: %s (keeping the current model)", type(error).__name__, error
                )

    # ------------------------------------------------------------------ the store
    async def night_features(self, base: str) -> tuple[str, ...]:
        if base not in self.nights:
            raw = await self.redis.hget(f"{base}:meta", "features")
            if raw is None:
                raise ServiceError(503, "no_night", "the served night's description is missing")
            self.nights = {base: tuple(json.loads(raw))}  # the previous night is not needed
        return self.nights[base]

    async def fetch(self, ids: list[int]) -> tuple[str, dt.date, list[bytes | None], list[int]]:
        """Counts and rows for ``ids`` in one round trip; raises on a store failure."""
        minute = int(time.time() // 60)
        args = [str(i) for i in ids]
        pipe = self.redis.pipeline(transaction=False)
        await self.rate_script(
            args=[f"{self.online.prefix}:rate:{minute}:", 61, *args], client=pipe
        )
        await self.read_script(keys=[pointer_key(self.online.prefix)], args=args, client=pipe)
        counts, out = await pipe.execute()
        if not out:
            raise ServiceError(
                503, "no_night", "no night in the online store yet: the nightly materializes one"
            )
        base = out[0].decode()
        return base, dt.date.fromisoformat(out[1].decode()), list(out[2:]), [int(c) for c in counts]

    async def stale(self, ids: list[int], why: str) -> list[dict[str, Any]]:
        """The warehouse's last batch predictions, or 503 naming why there is no answer."""
        try:
            found = await asyncio.to_thread(self._latest_predictions, ids)
        except Exception as error:  # noqa: BLE001 - the warehouse is the fallback's fallback
            raise ServiceError(
                503,
                "store_unavailable",
                f"{why}; the warehouse's last batch predictions are unavailable too "
                f"({type(error).__name__})",
            ) from None
        answers = []
        for customer_id in ids:
            row = found.get(customer_id)
            if row is None:
                answers.append({"customer_id": customer_id, "error": "not_found"})
                continue
            answers.append(
                {
                    "customer_id": customer_id,
                    "churn_probability": float(row["churn_probability"]),
                    "risk_band": row["risk_band"],
                    "contact": row["contact"],
                    "contact_rule": "batch",
                    "model_name": row["model_name"],
                    "model_version": str(row["model_version"]),
                    "served_by": row["served_by"],
                    "reasons": list(row["reason_codes"] or []),
                    "feature_as_of_date": row["as_of_date"].isoformat(),
                    "stale": True,
                    "stale_reason": why,
                }
            )
        self.metrics.stale.inc(sum(1 for a in answers if "error" not in a))
        return answers

    def _latest_predictions(self, ids: list[int]) -> dict[int, dict[str, Any]]:
        if self._scoring is None:
            from churnops.score.store import ScoringStore
            from churnops.warehouse import warehouse_for

            self._scoring = ScoringStore(warehouse_for(self.settings, read_only=True))
        return self._scoring.latest_predictions(ids)

    # ------------------------------------------------------------------ scoring
    async def score(self, ids: list[int]) -> list[dict[str, Any]]:
        """Each id's answer (a score, or ``{"error": "not_found"}``)."""
        mix = self.mix
        if mix is None:
            raise ServiceError(503, "no_model", self.mix_error or "no model loaded")
        why = ""
        if not self.store_breaker.allow():
            why = f"online store breaker open (retry in {self.store_breaker.retry_after:.0f} s)"
        else:
            try:
                base, as_of_date, rows, counts = await self.fetch(ids)
                features = await self.night_features(base)
                self.store_breaker.record(True)
            except ServiceError:
                self.store_breaker.record(True)
                raise
            except Exception as error:  # noqa: BLE001 - any store failure: the fallback
                self.store_breaker.record(False)
                why = f"online store redis://{self.location} unavailable ({type(error).__name__})"
                log.warning("%s", why)
        self.metrics.breaker_open.labels("online_store").set(
            0 if self.store_breaker.state == "closed" else 1
        )
        if why:
            return await self.stale(ids, why)
        limit = self.settings.serve.rate_limit_per_minute
        limited = [i for i, count in zip(ids, counts, strict=True) if count > limit]
        if limited:
            raise ServiceError(
                429,
                "rate_limited",
                f"more than {limit} requests this minute for customer(s) "
                f"{', '.join(map(str, limited[:10]))}",
                retry_after=60 - int(time.time()) % 60,
            )
        present = [(i, r) for i, r in zip(ids, rows, strict=True) if r is not None]
        scored: dict[int, dict[str, Any]] = {}
        if present:
            if not self.model_breaker.allow():
                raise ServiceError(
                    503,
                    "model_breaker_open",
                    f"the model's breaker is open (retry in {self.model_breaker.retry_after:.0f} s)",
                )
            try:
                matrix = unpack_rows([r for _, r in present], len(features))
                results = score_rows(self.settings, mix, [i for i, _ in present], matrix, features)
                self.model_breaker.record(True)
            except Exception as error:  # noqa: BLE001 - answered as 503, counted
                self.model_breaker.record(False)
                log.warning("scoring failed: %s: %s", type(error).__name__, error)
                raise ServiceError(
                    503, "model_error", f"the model could not score: {type(error).__name__}"
                ) from None
            finally:
                self.metrics.breaker_open.labels("model").set(
                    0 if self.model_breaker.state == "closed" else 1
                )
            for result in results:
                result["feature_as_of_date"] = as_of_date.isoformat()
                result["stale"] = False
                result["stale_reason"] = None
                scored[result["customer_id"]] = result
        return [scored.get(i, {"customer_id": i, "error": "not_found"}) for i in ids]

    async def sample(self, request: dict[str, Any], answers: list[dict[str, Any]]) -> None:
        """Log a share of scored requests for the monitoring store (best effort)."""
        share = self.settings.serve.sample_share
        answers = [a for a in answers if "error" not in a]
        if share <= 0 or not answers or random.random() >= share:
            return
        record = json.dumps(
            {
                "id": uuid.uuid4().hex,
                "at": dt.datetime.now(dt.UTC).isoformat(),
                "request": request,
                "answers": answers,
            },
            default=str,
        )
        key = samples_key(self.online.prefix)
        try:
            pipe = self.redis.pipeline(transaction=False)
            pipe.rpush(key, record)
            pipe.ltrim(key, -SAMPLES_KEPT, -1)
            await pipe.execute()
        except Exception as error:  # noqa: BLE001 - a lost sample costs nothing
            log.debug("request sample not logged: %s", error)


class Measured:
    """Counts and times every HTTP request by route and status (plain ASGI: Starlette's
    ``BaseHTTPMiddleware`` costs a task and a stream per request)."""

    def __init__(self, app: Any, metrics: Metrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        began = time.perf_counter()
        status = 500

        async def sending(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            endpoint = getattr(scope.get("route"), "path", "unmatched")
            self.metrics.latency.labels(endpoint).observe(time.perf_counter() - began)
            self.metrics.requests.labels(endpoint, str(status)).inc()


def create_app(settings: Settings) -> FastAPI:
    """The service's FastAPI app for ``settings``."""
    service = Service(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI):  # noqa: ANN202
        await service.load_model()
        watcher = asyncio.create_task(service.watch_registry())
        try:
            yield
        finally:
            watcher.cancel()
            await service.redis.aclose()

    app = FastAPI(
        title="churnops real-time churn scores",
        version="1",
        description="The champion's churn probability for one customer now, from the "
        "night's features in the online store: the same score as the nightly batch. "
        f"Scoring endpoints need an API key in the `{API_KEY_HEADER}` header.",
        lifespan=lifespan,
    )
    app.state.service = service

    errors: dict[int | str, dict[str, Any]] = {
        status: {"model": ErrorBody} for status in (401, 404, 429, 503, 504)
    }

    key_header = APIKeyHeader(name=API_KEY_HEADER, auto_error=False)

    async def require_key(key: str | None = Depends(key_header)) -> str:
        # async: FastAPI runs a plain function dependency in its thread pool, per request.
        key_id = service.keys.known(key)
        if key_id is None and key:
            key_id = await asyncio.to_thread(service.keys.check, key)
        if key_id is None:
            raise ServiceError(
                401, "unauthorized", f"a valid API key is required in the {API_KEY_HEADER} header"
            )
        return key_id

    @app.exception_handler(ServiceError)
    async def service_error(_request: Request, error: ServiceError) -> JSONResponse:
        service.metrics.errors.labels(error.kind).inc()
        headers = {}
        if "retry_after" in error.extra:
            headers["Retry-After"] = str(error.extra["retry_after"])
        if error.status == 401:
            headers["WWW-Authenticate"] = API_KEY_HEADER
        return JSONResponse(
            {"error": error.kind, "detail": error.detail}, error.status, headers=headers
        )

    @app.exception_handler(RequestValidationError)
    async def bad_payload(_request: Request, error: RequestValidationError) -> JSONResponse:
        service.metrics.errors.labels("bad_payload").inc()
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg')}" for e in error.errors()
        )
        return JSONResponse({"error": "bad_payload", "detail": problems[:1000]}, 422)

    @app.exception_handler(Exception)
    async def unexpected(_request: Request, error: Exception) -> JSONResponse:
        service.metrics.errors.labels("internal").inc()
        log.error("unexpected %s: %s", type(error).__name__, error)
        return JSONResponse(
            {"error": "internal", "detail": f"unexpected {type(error).__name__}"}, 500
        )

    async def limited(coro: Any) -> Any:
        try:
            async with asyncio.timeout(settings.serve.timeout_seconds):
                return await coro
        except TimeoutError:
            raise ServiceError(
                504, "timeout", f"no answer within {settings.serve.timeout_seconds:g} s"
            ) from None

    app.add_middleware(Measured, metrics=service.metrics)

    @app.post("/v1/score", response_model=Score, responses=errors, tags=["scores"])
    async def score(body: ScoreRequest, _key: str = Depends(require_key)) -> JSONResponse:
        """One customer's churn score from the served night's features."""
        answers = await limited(service.score([body.customer_id]))
        answer = answers[0]
        if "error" in answer:
            raise ServiceError(
                404,
                "not_found",
                f"customer {body.customer_id} is not among the served night's active customers",
            )
        await service.sample({"customer_id": body.customer_id}, answers)
        # Built by the service (the schema's fields, tested): returned as is, without
        # FastAPI validating it against the response model once more.
        return JSONResponse(answer)

    @app.post("/v1/score:batch", response_model=BatchAnswer, responses=errors, tags=["scores"])
    async def score_batch(body: BatchRequest, _key: str = Depends(require_key)) -> JSONResponse:
        """Up to 1,000 customers' scores; unknown ids are listed in ``not_found``."""
        ids = list(dict.fromkeys(body.customer_ids))  # each customer once
        answers = await limited(service.score(ids))
        await service.sample(
            {"customer_ids": ids[:SAMPLED_ANSWERS_PER_BATCH]}, answers[:SAMPLED_ANSWERS_PER_BATCH]
        )
        return JSONResponse(
            {
                "scores": [a for a in answers if "error" not in a],
                "not_found": [a["customer_id"] for a in answers if "error" in a],
            }
        )

    @app.get("/healthz", tags=["operations"])
    async def healthz() -> dict[str, str]:
        """The process answers."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["operations"], responses={503: {"model": ErrorBody}})
    async def readyz() -> Any:
        """Ready when a model is loaded and the online store serves a night."""
        if service.mix is None:
            return JSONResponse({"error": "not_ready", "detail": service.mix_error}, 503)
        try:
            base = await service.redis.get(f"{settings.online.prefix}:current")
        except Exception as error:  # noqa: BLE001
            return JSONResponse(
                {
                    "error": "not_ready",
                    "detail": f"online store redis://{service.location}: {type(error).__name__}",
                },
                503,
            )
        if base is None:
            return JSONResponse(
                {"error": "not_ready", "detail": "no night in the online store yet"}, 503
            )
        champion, challenger = service.mix.versions
        return {
            "status": "ready",
            "champion_version": champion,
            "challenger_version": challenger,
            "night": text(base).split(":")[-2],
        }

    @app.get("/metrics", tags=["operations"], response_class=PlainTextResponse)
    async def metrics() -> PlainTextResponse:
        """Prometheus text format: requests, latency, errors by kind, the model version."""
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return PlainTextResponse(
            generate_latest(service.metrics.registry), media_type=CONTENT_TYPE_LATEST
        )

    return app


def app_from_environment() -> FastAPI:
    """The app for ``uvicorn --factory`` (each worker builds its own)."""
    from churnops.settings import load_settings

    return create_app(load_settings())

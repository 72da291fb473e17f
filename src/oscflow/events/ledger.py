"""The platform's ledger (SQL: SQLite embedded, PostgreSQL at team scale): which deliveries were
accepted (replay protection), what each event became, every job's state and lease, and which
workers are alive. The queue carries work; the ledger is what ``status`` and the lease-based
exclusion between workers read."""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

METADATA = sa.MetaData()

EVENTS = sa.Table(
    "oscflow_events",
    METADATA,
    sa.Column("delivery_id", sa.String(128), primary_key=True),
    sa.Column("received_at", sa.Float, nullable=False),
    sa.Column("event", sa.String(64), nullable=False),
    sa.Column("model", sa.String(256)),
    sa.Column("version", sa.String(32)),
    sa.Column("alias", sa.String(256)),
    sa.Column("source", sa.String(16), nullable=False),  # webhook | reconciler | cli
    sa.Column("payload", sa.Text, nullable=False),
)

JOBS = sa.Table(
    "oscflow_jobs",
    METADATA,
    sa.Column("key", sa.String(512), primary_key=True),
    sa.Column("service", sa.String(64), nullable=False),
    sa.Column("model", sa.String(256), nullable=False),
    sa.Column("version", sa.String(32), nullable=False),
    sa.Column("config_hash", sa.String(64), nullable=False),
    sa.Column("event_id", sa.String(128)),
    # queued running finished failed superseded (a failure a later success of the same
    # service on the same version made moot: not reported by `status`) skipped (not routed)
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("error", sa.Text),
    sa.Column("run_id", sa.String(64)),
    sa.Column("lease_owner", sa.String(128)),
    sa.Column("lease_until", sa.Float),
    sa.Column("queued_at", sa.Float),
    sa.Column("started_at", sa.Float),
    sa.Column("updated_at", sa.Float, nullable=False),
)

WORKERS = sa.Table(
    "oscflow_workers",
    METADATA,
    sa.Column("worker_id", sa.String(128), primary_key=True),
    sa.Column("host", sa.String(256), nullable=False),
    sa.Column("pid", sa.Integer, nullable=False),
    sa.Column("started_at", sa.Float, nullable=False),
    sa.Column("seen_at", sa.Float, nullable=False),
)


def job_key(model: str, version: str, service: str, config_hash: str) -> str:
    return f"{model}|{version}|{service}|{config_hash}"


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class Ledger:
    """Thin, explicit SQL over three tables; safe for several processes at once."""

    def __init__(self, url: str) -> None:
        self.url = url
        kwargs: dict[str, Any] = {"future": True}
        if url.startswith("sqlite:///"):
            Path(url[len("sqlite:///") :]).parent.mkdir(parents=True, exist_ok=True)
            kwargs["connect_args"] = {"timeout": 30}
        self.engine = sa.create_engine(url, **kwargs)
        if url.startswith("sqlite"):
            sa.event.listen(self.engine, "connect", _sqlite_pragmas)
        METADATA.create_all(self.engine)

    @contextmanager
    def _tx(self) -> Iterator[sa.Connection]:
        with self.engine.begin() as conn:
            yield conn

    # -- events ------------------------------------------------------------------------------

    def record_event(self, delivery_id: str, event: dict[str, Any], source: str) -> bool:
        """Insert the event; False if this delivery id was already recorded (a replay)."""
        row = {
            "delivery_id": delivery_id,
            "received_at": time.time(),
            "event": str(event.get("event", "")),
            "model": event.get("model"),
            "version": None if event.get("version") is None else str(event["version"]),
            "alias": event.get("alias"),
            "source": source,
            "payload": json.dumps(event, sort_keys=True),
        }
        try:
            with self._tx() as conn:
                conn.execute(EVENTS.insert().values(**row))
        except IntegrityError:
            return False
        return True

    def forget_event(self, delivery_id: str) -> None:
        """Undo ``record_event`` when the queue refused the event (so MLflow's retry is let in)."""
        with self._tx() as conn:
            conn.execute(EVENTS.delete().where(EVENTS.c.delivery_id == delivery_id))

    def recent_events(self, limit: int = 10) -> list[dict[str, Any]]:
        with self._tx() as conn:
            rows = conn.execute(
                sa.select(EVENTS).order_by(EVENTS.c.received_at.desc()).limit(limit)
            )
            return [dict(r._mapping) for r in rows]

    # -- jobs --------------------------------------------------------------------------------

    def _insert_job(self, key: str, fields: dict[str, Any], now: float) -> bool:
        """Create the job's row as queued; False if it already exists."""
        try:
            with self._tx() as conn:
                conn.execute(
                    JOBS.insert().values(
                        key=key, state="queued", attempts=0, queued_at=now, updated_at=now, **fields
                    )
                )
        except IntegrityError:
            return False
        return True

    def queued(self, key: str, fields: dict[str, Any]) -> None:
        """Note that a job was enqueued (creating its row, or re-queuing a failed one)."""
        now = time.time()
        if not self._insert_job(key, fields, now):
            with self._tx() as conn:
                conn.execute(
                    JOBS.update()
                    .where(JOBS.c.key == key, JOBS.c.state.in_(("failed", "superseded", "queued")))
                    .values(
                        state="queued",
                        queued_at=now,
                        updated_at=now,
                        event_id=fields.get("event_id"),
                    )
                )

    def claim(self, key: str, fields: dict[str, Any], owner: str, lease_s: float) -> bool:
        """Take the job's lease if nobody holds a live one; False if another worker does."""
        now = time.time()
        self._insert_job(key, fields, now)
        with self._tx() as conn:
            result = conn.execute(
                JOBS.update()
                .where(
                    JOBS.c.key == key,
                    sa.or_(
                        JOBS.c.lease_until.is_(None),
                        JOBS.c.lease_until < now,
                        JOBS.c.lease_owner == owner,
                    ),
                )
                .values(
                    lease_owner=owner,
                    lease_until=now + lease_s,
                    state="running",
                    started_at=now,
                    attempts=JOBS.c.attempts + 1,
                    error=None,
                    updated_at=now,
                )
            )
            return result.rowcount == 1

    def renew(self, key: str, owner: str, lease_s: float) -> bool:
        now = time.time()
        with self._tx() as conn:
            result = conn.execute(
                JOBS.update()
                .where(JOBS.c.key == key, JOBS.c.lease_owner == owner)
                .values(lease_until=now + lease_s, updated_at=now)
            )
            return result.rowcount == 1

    def finish(
        self, key: str, owner: str, state: str, run_id: str | None = None, error: str | None = None
    ) -> None:
        """Release the lease and record the outcome (finished | failed | queued for a retry);
        a success supersedes the earlier failures of its service on its version."""
        with self._tx() as conn:
            conn.execute(
                JOBS.update()
                .where(JOBS.c.key == key, JOBS.c.lease_owner == owner)
                .values(
                    state=state,
                    run_id=run_id,
                    error=None if error is None else error[:4000],
                    lease_owner=None,
                    lease_until=None,
                    updated_at=time.time(),
                )
            )
            if state == "finished":
                _supersede(conn, key)

    def failed(self, key: str, fields: dict[str, Any], error: str) -> None:
        """Record a job as failed for good without a lease (e.g. its config could not be
        composed); its row is created if need be."""
        self._mark(key, fields, "failed", error)

    def skipped(self, key: str, fields: dict[str, Any], reason: str) -> None:
        """Record a job that is not to run (its version's experiment does not take it)."""
        self._mark(key, fields, "skipped", reason)

    def _mark(self, key: str, fields: dict[str, Any], state: str, text: str) -> None:
        now = time.time()
        self._insert_job(key, fields, now)
        with self._tx() as conn:
            conn.execute(
                JOBS.update()
                .where(
                    JOBS.c.key == key,
                    sa.or_(JOBS.c.lease_until.is_(None), JOBS.c.lease_until < now),
                )
                .values(state=state, error=text[:4000], updated_at=now)
            )

    def settle(self, key: str, fields: dict[str, Any], run_id: str) -> None:
        """Record a job found already done (unless a worker holds a live lease on it)."""
        self.queued(key, fields)
        now = time.time()
        with self._tx() as conn:
            conn.execute(
                JOBS.update()
                .where(
                    JOBS.c.key == key,
                    sa.or_(JOBS.c.lease_until.is_(None), JOBS.c.lease_until < now),
                )
                .values(state="finished", run_id=run_id, error=None, updated_at=now)
            )
            _supersede(conn, key)

    def job(self, key: str) -> dict[str, Any] | None:
        with self._tx() as conn:
            row = conn.execute(sa.select(JOBS).where(JOBS.c.key == key)).first()
            return None if row is None else dict(row._mapping)

    def live_lease(self, key: str) -> bool:
        job = self.job(key)
        return bool(job and job["lease_until"] and job["lease_until"] > time.time())

    def jobs(self, limit: int = 20, state: str | None = None) -> list[dict[str, Any]]:
        query = sa.select(JOBS).order_by(JOBS.c.updated_at.desc()).limit(limit)
        if state:
            query = query.where(JOBS.c.state == state)
        with self._tx() as conn:
            return [dict(r._mapping) for r in conn.execute(query)]

    def counts(self) -> dict[str, int]:
        with self._tx() as conn:
            rows = conn.execute(sa.select(JOBS.c.state, sa.func.count()).group_by(JOBS.c.state))
            return {state: int(n) for state, n in rows}

    # -- workers -----------------------------------------------------------------------------

    def heartbeat(self, wid: str, started_at: float) -> None:
        now = time.time()
        host, _, pid = wid.rpartition(":")
        with self._tx() as conn:
            updated = conn.execute(
                WORKERS.update().where(WORKERS.c.worker_id == wid).values(seen_at=now)
            ).rowcount
            if not updated:
                conn.execute(
                    WORKERS.insert().values(
                        worker_id=wid, host=host, pid=int(pid), started_at=started_at, seen_at=now
                    )
                )

    def drop_worker(self, wid: str) -> None:
        with self._tx() as conn:
            conn.execute(WORKERS.delete().where(WORKERS.c.worker_id == wid))

    def workers(self, alive_within_s: float) -> list[dict[str, Any]]:
        cutoff = time.time() - alive_within_s
        with self._tx() as conn:
            rows = conn.execute(sa.select(WORKERS).where(WORKERS.c.seen_at >= cutoff))
            return [dict(r._mapping) for r in rows]


def _supersede(conn: sa.Connection, key: str) -> None:
    """Mark the failed jobs of ``key``'s service and version (other config hashes, or a
    config that could not be composed) superseded, if ``key`` is finished."""
    row = conn.execute(
        sa.select(JOBS.c.service, JOBS.c.model, JOBS.c.version, JOBS.c.state).where(
            JOBS.c.key == key
        )
    ).first()
    if row is None or row.state != "finished":
        return
    conn.execute(
        JOBS.update()
        .where(
            JOBS.c.service == row.service,
            JOBS.c.model == row.model,
            JOBS.c.version == row.version,
            JOBS.c.state == "failed",
            JOBS.c.key != key,
        )
        .values(state="superseded", updated_at=time.time())
    )


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()

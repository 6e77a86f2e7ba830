"""Gateway calls the database could not take, kept on disk until it can.

A call that went through the gateway has been paid for at the provider, so it must reach the
ledger even across a database outage or a restart. The recorder appends what it cannot
write here, a line of JSON per call, and replays it later. Replays are safe to repeat: each
call carries its own request id, so a call the database already holds is not recorded or
settled twice.

Each recorder owns one file, locked while its process lives; a file whose lock is free was
left by a process that died, and the next recorder to start takes it over.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from llmledger.accounts.service import Principal
from llmledger.budgets.counters import Held
from llmledger.budgets.line_codec import line_from_json, line_to_json
from llmledger.usage.schemas import UsageIn

log = logging.getLogger("llmledger.gateway")


@dataclass(frozen=True)
class Finished:
    """A call that has run: who made it, what it used, and the hold to settle, if any."""

    principal: Principal
    event: UsageIn
    held: Held | None = None
    # Our input token estimate, when the provider reported its own count to check it with.
    estimated_input_tokens: int | None = None

    def to_json(self) -> dict[str, Any]:
        p, h = self.principal, self.held
        return {
            "principal": [p.organization_id, p.api_key_id, p.time_zone, p.plan],
            "event": self.event.model_dump(mode="json", exclude_none=True),
            "estimate": self.estimated_input_tokens,
            "held": None
            if h is None
            else {
                "id": h.id,
                "org": h.organization_id,
                "amount": h.amount,
                "lines": [line_to_json(line) for line in h.lines],
                "backend": h.backend,
                "expires_at": h.expires_at.isoformat(),
            },
        }

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Finished:
        org_id, key_id, time_zone, plan = raw["principal"]
        h = raw["held"]
        held = (
            None
            if h is None
            else Held(
                h["id"],
                h["org"],
                h["amount"],
                tuple(line_from_json(line) for line in h["lines"]),
                h["backend"],
                datetime.fromisoformat(h["expires_at"]),
            )
        )
        return cls(
            Principal(org_id, key_id, time_zone, plan),
            UsageIn.model_validate(raw["event"]),
            held,
            raw.get("estimate"),
        )


class Spool:
    """The recorder's own file of calls waiting for the database (used by one thread).

    Waiting calls are kept in memory too; if the disk fails as well, they wait in memory only
    (logged), so the recorder goes on either way."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.path = directory / f"recorder-{uuid.uuid4().hex}.jsonl"
        self._file: IO[str] | None = None
        self.pending: list[Finished] = []

    def add(self, calls: list[Finished]) -> None:
        """Keep calls on disk (flushed and synced: they are the only record of them)."""
        if not calls:
            return
        self.pending += calls
        self._append("".join(json.dumps(call.to_json()) + "\n" for call in calls))

    def recorded(self, calls: list[Finished]) -> None:
        """Calls a replay got into the database. The file only ever grows (a crash
        mid-write loses nothing) until nothing waits, when it is emptied."""
        self._drop(calls, "recorded")

    def reject(self, calls: list[Finished]) -> None:
        """Calls the database keeps refusing while it is up: set aside in a file of their own
        for an operator, no longer retried."""
        if not calls:
            return
        rejected = self.directory / f"rejected-{uuid.uuid4().hex}.jsonl"
        try:
            with open(rejected, "w", encoding="utf-8") as file:
                file.write("".join(json.dumps(call.to_json()) + "\n" for call in calls))
        except OSError:
            log.exception("rejected gateway calls could not be set aside; they stay spooled")
            return
        log.error(
            "%d gateway calls the database refuses were set aside in %s", len(calls), rejected
        )
        self._drop(calls, "rejected")

    def adopt_orphans(self) -> int:
        """Take over the files of recorders whose process has ended; returns the calls found."""
        if not self.directory.is_dir():
            return 0
        found = 0
        for path in sorted(self.directory.glob("recorder-*.jsonl")):
            if path == self.path:
                continue
            with open(path, "r+", encoding="utf-8") as orphan:
                try:
                    fcntl.flock(orphan, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue  # a live recorder's
                calls, unreadable = _read(orphan)
                if unreadable:  # e.g. the last line, torn by a crash mid-write
                    log.error("%d unreadable lines in %s were skipped", len(unreadable), path)
                    (path.with_suffix(".unreadable")).write_text("".join(unreadable))
                self.add(calls)  # ours now, safely on disk, before the orphan goes
                if self._file is not None or not calls:
                    path.unlink()
                found += len(calls)
        return found

    def close(self) -> None:
        if self.pending and self._file is None:
            log.error("%d gateway calls could not be written or spooled", len(self.pending))
        if self._file is not None:
            empty = not self.pending
            self._file.close()
            self._file = None
            if empty:
                self.path.unlink(missing_ok=True)

    def _drop(self, calls: list[Finished], why: str) -> None:
        done = {call.event.client_request_id for call in calls}
        self.pending = [c for c in self.pending if c.event.client_request_id not in done]
        if self.pending:
            self._append(json.dumps({why: sorted(str(d) for d in done)}) + "\n")
            return
        try:
            if self._file is not None:
                self._file.truncate(0)
        except OSError:
            log.exception("the spool file could not be emptied")

    def _append(self, text: str) -> None:
        """One write, flushed and synced; a failing disk leaves the calls in memory."""
        try:
            file = self._open()
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        except OSError:
            log.exception("the spool at %s cannot be written; calls wait in memory", self.path)

    def _open(self) -> IO[str]:
        if self._file is None:
            self.directory.mkdir(parents=True, exist_ok=True)
            file = open(self.path, "a+", encoding="utf-8")  # noqa: SIM115
            fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
            self._file = file
        return self._file


def _read(file: IO[str]) -> tuple[list[Finished], list[str]]:
    """The calls in a spool file still waiting, and the lines that cannot be read."""
    calls: dict[str | None, Finished] = {}
    done: set[str] = set()
    unreadable: list[str] = []
    for line in file:
        if not line.strip():
            continue
        try:
            raw = json.loads(line)
            if "recorded" in raw or "rejected" in raw:
                done.update(raw.get("recorded", []) + raw.get("rejected", []))
            else:
                call = Finished.from_json(raw)
                calls[call.event.client_request_id] = call
        except (ValueError, KeyError, TypeError):
            unreadable.append(line if line.endswith("\n") else line + "\n")
    return [call for rid, call in calls.items() if rid not in done], unreadable

"""Budget counters in Redis, for many processes and high rates.

Each check-and-hold is one Lua script over all the call's lines, so Redis runs it
atomically. Spend is also kept in the database's counters (in the same transaction as the
usage events), which is what a missing Redis key is rebuilt from; holds live only in Redis.
Amounts are integer nano-dollars (exact in Lua up to 2^53, about $9 million per period).
"""

from __future__ import annotations

import json
import uuid
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import redis
import redis.asyncio
from sqlalchemy.orm import Session

from llmledger.budgets.counters import Held, LineState, ReserveResult, SpendChange, States
from llmledger.budgets.line_codec import line_from_json, line_to_json
from llmledger.budgets.lines import Line
from llmledger.budgets.sql_counters import SqlCounterStore, ensure_counters
from llmledger.kit.group_commit import GroupCommit

# Keys outlive their period by a week so late settles still find them.
GRACE = timedelta(days=7)
MISSING = -1

# Check-and-hold for a batch of calls, each on all of its lines or on none. KEYS: for each
# call its counters then its hold key; last, the expiry index. ARGV: the number of calls, then
# for each: n, amount, (limit, hard) per line, expiry time, hold id, lines JSON, keys JSON.
# Out, for each call: status (1 held, 0 refused, -1 counter missing), the line it concerns,
# then, if held, spent and reserved of each line.
_RESERVE = """
local due = KEYS[#KEYS]
local a, k, out = 2, 1, {}
for _ = 1, tonumber(ARGV[1]) do
  local n, amount = tonumber(ARGV[a]), tonumber(ARGV[a + 1])
  local spent, reserved, status, line = {}, {}, 1, 0
  for i = 1, n do
    local v = redis.call('HMGET', KEYS[k + i - 1], 's', 'r')
    if not v[1] then status, line = -1, i break end
    spent[i], reserved[i] = tonumber(v[1]), tonumber(v[2] or '0')
    if ARGV[a + 1 + 2 * i] == '1'
        and spent[i] + reserved[i] + amount > tonumber(ARGV[a + 2 * i]) then
      status, line = 0, i
      break
    end
  end
  out[#out + 1] = status
  out[#out + 1] = line
  local base = a + 2 + 2 * n
  if status == 1 then
    for i = 1, n do
      redis.call('HINCRBY', KEYS[k + i - 1], 'r', amount)
      out[#out + 1] = spent[i]
      out[#out + 1] = reserved[i] + amount
    end
    redis.call('HSET', KEYS[k + n], 'a', amount, 'k', ARGV[base + 3], 'l', ARGV[base + 2])
    redis.call('ZADD', due, ARGV[base], ARGV[base + 1])
  end
  a, k = base + 4, k + n + 1
end
return out
"""

# Turn a hold into spend in one step (KEYS: counters, hold, expiry index; ARGV: id, actual):
# freeing the hold and adding the spend apart would let another call slip into the gap.
_SETTLE = """
local n = #KEYS - 2
for i = 1, n do
  if redis.call('EXISTS', KEYS[i]) == 0 then return {-1, i} end
end
local amount = redis.call('HGET', KEYS[n + 1], 'a')
local out = {1}
for i = 1, n do
  if amount then
    if redis.call('HINCRBY', KEYS[i], 'r', -tonumber(amount)) < 0 then
      redis.call('HSET', KEYS[i], 'r', 0)
    end
  end
  out[#out + 1] = redis.call('HINCRBY', KEYS[i], 's', tonumber(ARGV[2]))
end
redis.call('DEL', KEYS[n + 1])
redis.call('ZREM', KEYS[n + 2], ARGV[1])
return out
"""

# Give holds back (KEYS: the holds, then the expiry index; ARGV: their ids). Each hold names
# its own counter keys. Out: 1 for each hold given back, 0 for one already gone.
_UNHOLD = """
local due = KEYS[#KEYS]
local out = {}
for q = 1, #KEYS - 1 do
  local amount = redis.call('HGET', KEYS[q], 'a')
  if amount then
    for _, key in ipairs(cjson.decode(redis.call('HGET', KEYS[q], 'k'))) do
      if redis.call('HINCRBY', key, 'r', -tonumber(amount)) < 0 then
        redis.call('HSET', key, 'r', 0)
      end
    end
    redis.call('DEL', KEYS[q])
    redis.call('ZREM', due, ARGV[q])
  end
  out[q] = amount and 1 or 0
end
return out
"""

_ADD_SPEND = """
for i = 1, #KEYS do
  if redis.call('EXISTS', KEYS[i]) == 0 then return {-1, i} end
end
local out = {1}
for i = 1, #KEYS do
  out[#out + 1] = redis.call('HINCRBY', KEYS[i], 's', tonumber(ARGV[i]))
end
return out
"""

_EXPIRE_DUE = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, 500)
for _, id in ipairs(due) do
  local hold = ARGV[2] .. id
  local amount = redis.call('HGET', hold, 'a')
  if amount then
    for _, key in ipairs(cjson.decode(redis.call('HGET', hold, 'k'))) do
      if redis.call('HINCRBY', key, 'r', -tonumber(amount)) < 0 then
        redis.call('HSET', key, 'r', 0)
      end
    end
    redis.call('DEL', hold)
  end
  redis.call('ZREM', KEYS[1], id)
end
return #due
"""


@dataclass(frozen=True)
class _HoldRequest:
    keys: list[str]  # the call's counter keys, then its hold key
    args: list[str | int | float]
    lines: int


class RedisCounterStore:
    name = "redis"

    def __init__(
        self,
        client: redis.Redis,
        prefix: str,
        sql: SqlCounterStore,
        aclient: redis.asyncio.Redis | None = None,
    ) -> None:
        self.client = client
        self.aclient = aclient
        self._areserve = aclient.register_script(_RESERVE) if aclient is not None else None
        self.prefix = prefix
        self.sql = sql
        self._reserve = client.register_script(_RESERVE)
        # Concurrent holds from this process share round trips (one script call per batch).
        self._holds: GroupCommit[_HoldRequest, tuple[int, int, list[int]]] = GroupCommit(
            self._reserve_batch
        )
        self._releases: GroupCommit[str, bool] = GroupCommit(self._unhold_batch)
        self._unhold_script = client.register_script(_UNHOLD)
        self._add = client.register_script(_ADD_SPEND)
        self._settle = client.register_script(_SETTLE)
        self._expire = client.register_script(_EXPIRE_DUE)

    def counter_key(self, line: Line) -> str:
        return f"{self.prefix}:c:{line.budget_id}:{line.allocation_id}:{line.period.key}"

    def _hold_key(self, hold_id: str) -> str:
        return f"{self.prefix}:h:{hold_id}"

    @property
    def _due_key(self) -> str:
        return f"{self.prefix}:due"

    def hydrate(self, session: Session, org_id: int, lines: Sequence[Line]) -> None:
        """Create missing Redis counters from the database's (themselves from the ledger)."""
        ensure_counters(session, org_id, lines)
        states = self.sql.read(session, lines)
        pipe = self.client.pipeline()
        for line in lines:
            key = self.counter_key(line)
            pipe.hsetnx(key, "s", states[line.key].spent)
            pipe.hsetnx(key, "r", 0)
            pipe.expireat(key, line.period.end + GRACE)
        pipe.execute()

    def _hold_request(
        self, org_id: int, ordered: Sequence[Line], amount: int, expires_at: datetime, hold_id: str
    ) -> _HoldRequest:
        keys = [self.counter_key(line) for line in ordered]
        args: list[str | int | float] = [len(ordered), amount]
        for line in ordered:
            args += [line.limit_nanos, "1" if line.hard else "0"]
        payload = json.dumps({"lines": [line_to_json(line) for line in ordered], "org": org_id})
        # The hold remembers its counter keys so expiry needs nothing but Redis.
        args += [expires_at.timestamp(), hold_id, payload, json.dumps(keys)]
        return _HoldRequest([*keys, self._hold_key(hold_id)], args, len(ordered))

    def reserve(
        self,
        session: Session,
        org_id: int,
        lines: Sequence[Line],
        amount: int,
        expires_at: datetime,
    ) -> ReserveResult:
        ordered = sorted(lines, key=lambda line: line.key)
        hold_id = str(uuid.uuid4())
        request = self._hold_request(org_id, ordered, amount, expires_at, hold_id)
        for _ in range(3):
            status, line_number, values = self._holds.submit(request)
            if status != MISSING:
                break
            self.hydrate(session, org_id, ordered)
        if status == 0:
            refused = ordered[line_number - 1]
            return ReserveResult(None, refused, self.read(session, ordered))
        return self._held(org_id, ordered, amount, expires_at, hold_id, values)

    async def reserve_async(
        self, org_id: int, lines: Sequence[Line], amount: int, expires_at: datetime
    ) -> ReserveResult | None:
        """`reserve` over the asyncio client, for the gateway's event loop. None when a counter
        is not in Redis yet: building it needs the database, which the thread path has."""
        if self.aclient is None or self._areserve is None:
            return None
        ordered = sorted(lines, key=lambda line: line.key)
        hold_id = str(uuid.uuid4())
        request = self._hold_request(org_id, ordered, amount, expires_at, hold_id)
        out = await self._areserve(keys=[*request.keys, self._due_key], args=[1, *request.args])
        status, line_number = int(out[0]), int(out[1])
        if status == MISSING:
            return None
        if status == 0:
            states = {}
            for line in ordered:
                spent, reserved = await self.aclient.hmget(self.counter_key(line), "s", "r")
                states[line.key] = LineState(int(spent or 0), int(reserved or 0))
            return ReserveResult(None, ordered[line_number - 1], states)
        values = [int(v) for v in out[2 : 2 + 2 * len(ordered)]]
        return self._held(org_id, ordered, amount, expires_at, hold_id, values)

    def _held(
        self,
        org_id: int,
        ordered: Sequence[Line],
        amount: int,
        expires_at: datetime,
        hold_id: str,
        values: list[int],
    ) -> ReserveResult:
        states = {
            line.key: LineState(values[2 * i], values[2 * i + 1]) for i, line in enumerate(ordered)
        }
        held = Held(hold_id, org_id, amount, tuple(ordered), self.name, expires_at)
        return ReserveResult(held, None, states)

    def _reserve_batch(self, requests: Sequence[_HoldRequest]) -> list[tuple[int, int, list[int]]]:
        """One script call for every queued hold (see GroupCommit)."""
        keys: list[str] = []
        args: list[str | int | float] = [len(requests)]
        for request in requests:
            keys += request.keys
            args += request.args
        out = self._reserve(keys=[*keys, self._due_key], args=args)
        results, at = [], 0
        for request in requests:
            status, line = int(out[at]), int(out[at + 1])
            at += 2
            values: list[int] = []
            if status == 1:
                values = [int(v) for v in out[at : at + 2 * request.lines]]
                at += 2 * request.lines
            results.append((status, line, values))
        return results

    def _unhold(self, hold_id: str) -> bool:
        return bool(self._releases.submit(hold_id))

    def _unhold_batch(self, hold_ids: Sequence[str]) -> list[bool]:
        keys = [self._hold_key(hold_id) for hold_id in hold_ids]
        out = self._unhold_script(keys=[*keys, self._due_key], args=list(hold_ids))
        return [bool(int(x)) for x in out]

    def settle(self, session: Session, held: Held, actual: int) -> list[SpendChange]:
        """Free the hold and add the spend in one script (an expired hold adds only spend);
        the database's counters get the spend in the caller's transaction."""
        lines = list(held.lines)
        keys = [self.counter_key(line) for line in lines]
        result = self._with_counters(
            session,
            held.organization_id,
            lines,
            lambda: self._settle(
                keys=[*keys, self._hold_key(held.id), self._due_key], args=[held.id, actual]
            ),
        )
        self.sql.add_spend(session, held.organization_id, [(line, actual) for line in lines])
        return [
            SpendChange(line, int(result[1 + i]) - actual, int(result[1 + i]))
            for i, line in enumerate(lines)
        ]

    def settle_many(
        self, session: Session, settlements: Sequence[tuple[Held, int]]
    ) -> list[SpendChange]:
        """Many settlements in one round trip (each still one atomic script), and the
        database's counters updated once per line for all of them."""
        pipe = self.client.pipeline(transaction=False)
        for held, actual in settlements:
            keys = [self.counter_key(line) for line in held.lines]
            self._settle(
                keys=[*keys, self._hold_key(held.id), self._due_key],
                args=[held.id, actual],
                client=pipe,
            )
        results = pipe.execute()
        changes: list[SpendChange] = []
        spend: dict[int, list[tuple[Line, int]]] = defaultdict(list)
        for (held, actual), result in zip(settlements, results, strict=True):
            if result[0] == MISSING:  # a counter vanished from Redis: rebuild, then settle alone
                changes += self.settle(session, held, actual)
                continue
            spend[held.organization_id] += [(line, actual) for line in held.lines]
            changes += [
                SpendChange(line, int(result[1 + i]) - actual, int(result[1 + i]))
                for i, line in enumerate(held.lines)
            ]
        for org_id, amounts in spend.items():  # one UPDATE per line for the whole batch
            self.sql.add_spend(session, org_id, amounts)
        return changes

    def _with_counters(
        self, session: Session, org_id: int, lines: Sequence[Line], run: Callable[[], Any]
    ) -> Any:
        """Run a script that needs the lines' counters, building missing ones first."""
        for _ in range(3):
            result = run()
            if result[0] != MISSING:
                return result
            self.hydrate(session, org_id, lines)
        raise RuntimeError("budget counters could not be rebuilt in Redis")

    def release(self, session: Session, held: Held) -> bool:
        return self._unhold(held.id)

    def restart(self, session: Session, org_id: int, lines: Sequence[Line]) -> None:
        """The database's counters start again; Redis's are rebuilt from them on next use."""
        self.sql.restart(session, org_id, lines)
        if lines:
            self.client.delete(*(self.counter_key(line) for line in lines))

    def add_spend(
        self, session: Session, org_id: int, amounts: Sequence[tuple[Line, int]]
    ) -> list[SpendChange]:
        """Spend goes to the database's counters (with the caller's transaction) and, before
        that commits, to Redis: a Redis counter rebuilt meanwhile cannot count it twice."""
        totals: dict[tuple[int, int, str], int] = defaultdict(int)
        by_key: dict[tuple[int, int, str], Line] = {}
        for line, amount in amounts:
            totals[line.key] += amount
            by_key[line.key] = line
        if not totals:
            return []
        ordered = [by_key[k] for k in sorted(totals)]
        keys = [self.counter_key(line) for line in ordered]
        values = [totals[line.key] for line in ordered]
        result = self._with_counters(
            session, org_id, ordered, lambda: self._add(keys=keys, args=values)
        )
        self.sql.add_spend(session, org_id, list(zip(ordered, values, strict=True)))
        return [
            SpendChange(line, int(result[1 + i]) - values[i], int(result[1 + i]))
            for i, line in enumerate(ordered)
        ]

    def read(self, session: Session, lines: Sequence[Line]) -> States:
        if not lines:
            return {}
        pipe = self.client.pipeline()
        for line in lines:
            pipe.hmget(self.counter_key(line), "s", "r")
        found = pipe.execute()
        states = {}
        fallback = None
        for line, (spent, reserved) in zip(lines, found, strict=True):
            if spent is None:  # not in Redis yet: the database knows the spend
                fallback = fallback or self.sql.read(session, lines)
                states[line.key] = LineState(fallback[line.key].spent, 0)
            else:
                states[line.key] = LineState(int(spent), int(reserved or 0))
        return states

    def expire_due(self, session: Session, now: datetime) -> int:
        expired = int(
            self._expire(keys=[self._due_key], args=[now.timestamp(), f"{self.prefix}:h:"])
        )
        # Holds taken in the database while Redis was down expire there.
        return expired + self.sql.expire_due(session, now)

    def held(self, hold_id: str) -> Held | None:
        raw, amount = self.client.hmget(self._hold_key(hold_id), "l", "a")
        if raw is None or amount is None:
            return None
        data = json.loads(raw)
        lines = tuple(line_from_json(item) for item in data["lines"])
        expires = self.client.zscore(self._due_key, hold_id) or 0
        return Held(
            hold_id,
            int(data["org"]),
            int(amount),
            lines,
            self.name,
            datetime.fromtimestamp(expires, UTC),
        )

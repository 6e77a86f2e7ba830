"""The usage ledger: record LLM calls with their cost, idempotently; list them."""

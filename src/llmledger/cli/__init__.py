"""The `llmledger` command line."""

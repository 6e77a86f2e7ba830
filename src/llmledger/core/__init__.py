"""Pure core of llmledger: token counting, money, pricing math. No I/O, no frameworks."""

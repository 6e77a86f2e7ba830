"""Cost preview before a prompt runs: tokens, cost breakdown, cheaper models that fit."""

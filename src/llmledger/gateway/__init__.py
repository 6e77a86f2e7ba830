"""The LLM gateway: OpenAI- and Anthropic-compatible endpoints that estimate, enforce and
record every call."""

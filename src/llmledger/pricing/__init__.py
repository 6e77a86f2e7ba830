"""Prices: the catalog seeded from genai-prices, organization overrides, price look-up."""

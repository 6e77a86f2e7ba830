"""Organizations, teams, departments, users and API keys."""

"""External registries linked by a team (see issue 3)."""

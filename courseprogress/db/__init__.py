"""PostgreSQL, as Django ships it, with a health check that costs no round trip (base.py)."""

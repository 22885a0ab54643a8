"""Process-level runtime helpers (running untrusted code)."""

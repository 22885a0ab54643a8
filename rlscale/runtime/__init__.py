"""Process-level runtime: the time- and memory-bounded worker pool, the code sandbox."""

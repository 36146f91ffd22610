"""The engine's caching machinery: the stat cache, the cold parse over worker processes, and the two
persistent stores (parsed files, answers). The plan-format rules live one level up, in perfd.engine."""

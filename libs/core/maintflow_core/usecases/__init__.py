"""The use-cases the transports call. Each takes an AsyncSession and flushes; the caller commits."""

"""Metrics as pure functions of reduced states: one module each, the reducers they share, the
linear algebra, and a registry. No files, no sources, no networks."""

"""Statistics: test statistics of binned counts, pull terms, limits. Pure numpy/scipy."""

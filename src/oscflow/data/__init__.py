"""Dataset pipeline: DVC stage entry points and the on-disk format of MC pairs and spectra."""

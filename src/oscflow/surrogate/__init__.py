"""Neural-network surrogates of binned spectra: architectures, scaling, training, accuracy.

Layer rule (DESIGN.md): imports data/ and torch; never MLflow (that is tracking/, registry/).
"""

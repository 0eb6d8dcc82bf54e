"""Estimators of SNR curves: exact (closed forms), Monte Carlo (paired simulation), and the one
place where signal and variance become an SNR curve with its errors and metrics (``snr``)."""

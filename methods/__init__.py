"""Clustering methods behind one scikit-learn interface; see :mod:`cutbench.methods.registry`."""

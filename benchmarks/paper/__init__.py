"""The paper targets shipped with cutbench: ``targets/*.yaml`` (one per published table or figure) and
``published/*.csv`` (the papers' numbers); read through :mod:`cutbench.paper`."""

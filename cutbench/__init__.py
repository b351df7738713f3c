"""cutbench: a benchmark suite for spectral clustering.

Data flows one way: dataset -> features -> affinity -> method -> metrics -> store -> report.
"""

__version__ = "0.1.0"


class CutbenchError(ValueError):
    """Bad input or configuration; the message names the problem and the fix."""


class DataUnavailableError(CutbenchError):
    """A dataset's files are missing and could not be downloaded; the message says how to get them."""


class CutbenchWarning(UserWarning):
    """A recoverable problem the user should know about (e.g. isolated graph nodes)."""


__all__ = ["CutbenchError", "CutbenchWarning", "DataUnavailableError", "__version__"]

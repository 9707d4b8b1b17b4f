"""LDJ research portal: the domain package (ingest, pseudonyms, instruments, catalogue, ...)."""

__version__ = "0.1.0"

"""Layer 5, the chapters' reports: tables, verdicts and figures made from result records.

The book's plot style is :mod:`sam_hallucination.plotting`.
"""

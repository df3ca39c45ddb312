"""Applications built on the analysis.

Batch processing (process pool or dask), the demo, and figures.
"""

"""Applications built on the analysis: batch processing (process pool or dask), the demo, and
figures."""

"""The results file: the one place that knows its layout (HDF5 paths, units, summary columns,
group statistics); writes and reads analysis results."""

"""imgflow_thumbnailer."""

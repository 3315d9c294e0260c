"""Datasets, clip sampling and Lightning data modules (depends on `rendering`)."""

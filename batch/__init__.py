"""Batch scoring of contract tables through a registered model: pandas chunks, or Spark."""

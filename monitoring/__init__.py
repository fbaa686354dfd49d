"""Monitoring a live model: input drift, score shift and (with outcomes) performance."""

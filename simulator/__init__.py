"""The synthetic-cohort simulator (SYNTHETIC data only): generator and its sourced effect table."""

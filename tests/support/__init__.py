"""The test harness, shared by the tests (through tests/conftest.py's fixtures) and the
benchmarks (bench/): a valid contract cohort (``cohort``), a trained store and the pipelines run as
commands (``harness``), a live ``bentoml serve`` of the service (``harness``), and the rule for a
missing prerequisite (``prereqs``). Nothing here is a fixture; tests/conftest.py holds those.
"""

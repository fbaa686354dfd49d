"""The harness shared by the tests (through tests/conftest.py's fixtures), the benchmarks (bench/)
and the experiments (experiments/): a valid contract cohort (``cohort``), a trained store and the
pipelines run as commands (``commands``), a live ``bentoml serve`` of the service (``commands``),
scoring records (``records``) and the rule for a missing prerequisite (``prereqs``). It lives
outside tests/ so that bench/ and experiments/ need not import the test suite. Nothing here is a
fixture; tests/conftest.py holds those.
"""

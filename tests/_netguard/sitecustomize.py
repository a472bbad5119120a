"""Network guard for child processes of the test suite (lm_eval, lm-eval-bias runs).

tests/conftest.py puts this folder first on PYTHONPATH, so every Python child imports this at
start-up and gets the same guard as the test process (see netguard.py). Never raises: a broken
guard must not look like a failure of the program under test.
"""

try:
    import netguard

    netguard.install()
except Exception:  # noqa: BLE001,S110 - start-up must not fail because of the guard
    pass

"""What the tests and the benchmarks both drive the lakehouse with; never packaged into the wheel.

A real ``dagster dev`` (``devserver``), the Celery profile (``celery_profile``), throw-away
PostgreSQL databases (``postgres``), the tables' expected content computed from the landing files
alone (``truth``), hostile input (``hostile``) and the CPU profiler of ``bench --profile``
(``cpu_profile``). It imports the product only: neither ``packetx_lakehouse_tests`` nor
``benchmarks`` (checked by the import contracts in pyproject.toml).
"""

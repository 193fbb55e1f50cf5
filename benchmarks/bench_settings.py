"""The studio's settings plus one route, `/bench/bare`: a bare async Django view (no DRF, no
database) served by the same process and middleware as the API, the reference of
`benchmarks/request_cost.py`."""

from studio.settings import *  # noqa: F403

ROOT_URLCONF = "benchmarks.bench_urls"

"""Settings of the suite's daphne server (tests/live.py): the project's own, with the cache keys
under the prefix the suite removes when the server stops (see `daphne_server` in conftest)."""

import os

from studio.settings import *  # noqa: F403

CACHES = {"default": {**CACHES["default"], "KEY_PREFIX": os.environ["STUDIO_TEST_CACHE_PREFIX"]}}  # noqa: F405

"""Settings of the benchmark's gunicorn: VulHub's own, plus the baseline views under /_bench/.

Everything comes from vulhub.settings and the same environment variables, so the
server measured is the production configuration. Only two things are added:
- ROOT_URLCONF bench.urls: the app's URLs unchanged, and the bench-only baseline
  views under /_bench/;
- BENCH_CACHE=dummy: Django's dummy cache backend, so every page computes what it
  would otherwise take from Redis (scenario 1's uncached figure).
"""

from vulhub.settings import *  # noqa: F403
from vulhub.settings import env

ROOT_URLCONF = "bench.urls"

if env.str("BENCH_CACHE", default="") == "dummy":
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.dummy.DummyCache"}}

# The fixture of the template-only leaderboard page (bench.views.leaderboard_template).
BENCH_LEADERBOARD_FIXTURE = env.str("BENCH_LEADERBOARD_FIXTURE", default="")

"""config.settings plus the settings-level changes named in BENCH_VARIANT (experiments only).

`python -m bench --variant cached-token,...` serves the app with this module, so that a change
to config/settings.py can be measured before anyone makes it. See bench/variants.py.
"""

from bench.variants import settings_changes
from config.settings import *  # noqa: F403

globals().update(settings_changes(globals()))

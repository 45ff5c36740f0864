"""Moved to :mod:`rsscale.analysis.synthetic` (the calibration script imports it too); this
re-export keeps older imports working."""

from rsscale.analysis.synthetic import *  # noqa: F401,F403
from rsscale.analysis.synthetic import make_record, make_table, paper_like_laws, write_sweep  # noqa: F401

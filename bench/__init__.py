"""lensbatch's benchmark suite: `python -m bench` (or `make bench`).

Every comparison is a ratio of two measurements taken side by side in the same run,
repeated, with the median reported. Results go to bench-results/ (git-ignored).
"""

"""imgflow's benchmarks (`make bench`): each suite reports ratios to a baseline run in
the same process, never a pass/fail on time. See bench/__main__.py."""

"""``make eval-dedupe``: precision and recall of the duplicate decision on real photographs."""

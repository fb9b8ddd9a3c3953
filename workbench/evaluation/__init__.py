"""Progressive (prequential) evaluation of a candidate feature set against a baseline."""

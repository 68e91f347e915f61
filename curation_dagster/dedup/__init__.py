"""Duplicate removal: exact content hashes now; MinHash, perceptual and semantic dedup build on it."""

"""Selection strategies that pick items under a budget: seeded sample, top-k / threshold, quotas, DSIR,
k-center coreset and cluster balancing; `Selector` plans a shard with the one the spec names."""

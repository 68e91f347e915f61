"""Selection strategies that pick items under a budget."""

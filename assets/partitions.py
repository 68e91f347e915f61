"""The one partitions definition every per-shard asset shares."""

from dagster import DynamicPartitionsDefinition

#: One partition per landing shard (a file or folder in the landing zone), keyed by its sanitised name.
SHARDS = "shards"
shards = DynamicPartitionsDefinition(name=SHARDS)

"""Per-modality filters: each scores every row it sees, then decides against thresholds from the spec."""

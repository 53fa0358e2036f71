"""What every member of a region shares: datasets, plans, merging, the coordinator, the CLI."""

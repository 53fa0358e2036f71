"""Services a member runs for others over the coordinator: the federation gateway."""

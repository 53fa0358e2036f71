"""Services a member runs over the coordinator: the federation gateway, the web console."""

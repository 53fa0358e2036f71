"""The regional authority's web console: the region, questions, budgets, audit and fraud checks
in a browser, through the same coordinator, tokens, policy and audit as the CLI."""

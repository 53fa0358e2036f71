"""What every cityfed server runs around its methods: deny by default, limits, draining, health,
metrics, signals, and the one translation of errors into gRPC statuses."""

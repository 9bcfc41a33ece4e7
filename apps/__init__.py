"""Applications: clients of the services over NATS and HTTP (the CLI, the local development stack), never
reading a service's database or importing a service. The web console will sit beside them."""

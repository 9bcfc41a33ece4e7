"""What the compose deployment runs besides the services: its NATS server, its certificates, its healthchecks and
the `.env` of secrets it reads (docker-compose.yml; README, Operate)."""

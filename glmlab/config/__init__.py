"""The config: the schema registered with Hydra, its rules and checks, and the one-line
messages for a config that does not compose."""

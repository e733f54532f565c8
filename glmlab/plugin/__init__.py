"""The plugin contract: the hook specifications, the registry, one base class per plugin
kind, the runtime guards and the helpers plugin authors share."""

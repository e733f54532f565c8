"""Config-group files this package adds to glmlab's Hydra search path."""

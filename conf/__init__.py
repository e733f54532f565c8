"""glmlab's Hydra config groups. Importing this package (Hydra does, to read it) stores
the schemas of glmlab.config.schema in Hydra's ConfigStore, which the files here extend."""

from glmlab.config.schema import register_schemas

register_schemas()

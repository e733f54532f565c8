"""glmlab's Hydra config groups. Importing this package (Hydra does, to read it) stores
the schemas of glmlab.config in Hydra's ConfigStore, which the files here extend."""

from glmlab.config import register_schemas

register_schemas()

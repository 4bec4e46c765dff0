"""Environment versions: records of registered environments, kept in a registry as OCI
artifacts (other machines read them there) with a local index as a cache.

models.py: the record (schema-versioned, canonical JSON); record.py: a record from a render;
oci.py: the registry operations beyond pulling images; store.py: versions, lookup by hash,
the local index; diff.py: what changed between two versions.
"""

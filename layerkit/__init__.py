"""layerkit: layered YAML environment specs -> locked, content-hashed, multi-stage images."""

__version__ = "0.1.0"

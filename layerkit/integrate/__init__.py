"""Integrations with other tools: pre-commit (`layerkit check`) and make (`layerkit make`)."""

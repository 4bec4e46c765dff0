from layerkit.cli import entry

entry()

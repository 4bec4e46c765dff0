from layerkit.memo import entry

entry()

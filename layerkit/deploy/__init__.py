"""Deploying an environment as a web service from its `serve:` section (issue 16): the
capacity math and the Kubernetes manifests (pure: no engine, no cluster); and a local
deployment on the Docker engine (`layerkit serve`: keys.py, local.py, readiness.py)."""

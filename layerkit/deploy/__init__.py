"""Deploying an environment as a web service from its `serve:` section (issue 16): the
capacity math and the Kubernetes manifests. Pure: no engine, no cluster."""
